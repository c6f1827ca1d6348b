"""Inserting jobs into PostgreSQL: one statement per call, and one per loop turn.

A single job goes in with ``INSERT … VALUES`` (planned in a fraction of the
time of the ``unnest`` form: 4.9k vs 3.4k statements/s on one connection,
BENCHMARKS.md); several with one ``INSERT … SELECT FROM unnest(…)``. Both
send ``pg_notify`` in the inserting statement, so listeners hear of the jobs
at commit and only if they commit.

:class:`InsertBatcher` makes concurrent callers share commits: the inserts
asked for in one turn of the event loop become one statement, as the SQLite
store does (``store.sqlite.inserts``). If that statement fails, each caller's
jobs are tried alone, so one bad request fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from servcore.jobs import Job, NewJob
from servcore.store.job_columns import INSERTED, inserted_values
from servcore.store.postgres.rows import to_json

Database: TypeAlias = (
    "asyncpg.Pool[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)

_NAMES = ", ".join(name for name, _ in INSERTED)
_SELECTED = ", ".join("payload::json" if name == "payload" else name for name, _ in INSERTED)


class InsertStatements:
    """The two insert statements for one jobs table ($1 the time, $2 the channel)."""

    def __init__(self, jobs_table: str) -> None:
        values = ", ".join(
            f"${number}::json" if name == "payload" else f"${number}"
            for number, (name, _) in enumerate(INSERTED, 3)
        )
        self.one = f"""
            WITH inserted AS (
                INSERT INTO {jobs_table} ({_NAMES}, inserted_at) VALUES ({values}, $1)
                RETURNING id, queue
            )
            -- Sent at commit, to every listening process (see notifier.postgres).
            SELECT id, pg_notify($2, queue) FROM inserted
            """
        arrays = ", ".join(f"${number}::{kind}[]" for number, (_, kind) in enumerate(INSERTED, 3))
        self.many = f"""
            WITH inserted AS (
                INSERT INTO {jobs_table} ({_NAMES}, inserted_at)
                SELECT {_SELECTED}, $1
                FROM unnest({arrays}) WITH ORDINALITY AS t({_NAMES}, ordinal)
                ORDER BY ordinal
                RETURNING id, queue
            ),
            woken AS (SELECT pg_notify($2, queue) FROM (SELECT DISTINCT queue FROM inserted) q)
            SELECT id FROM inserted WHERE (SELECT count(*) FROM woken) >= 0
            """

    async def insert(
        self, db: Database, channel: str, new_jobs: Sequence[NewJob], now: datetime
    ) -> list[Job]:
        """Store ``new_jobs`` in one statement; the jobs, in their order."""
        rows = [_values(new, now) for new in new_jobs]
        if len(rows) == 1:
            found = await db.fetch(self.one, now, channel, *rows[0])
        else:
            columns = [list(column) for column in zip(*rows, strict=True)]
            found = await db.fetch(self.many, now, channel, *columns)
        # A sequence hands out ids in the order rows are inserted: ORDER BY ordinal.
        ids = sorted(row["id"] for row in found)
        return [new.stored(job_id, now) for job_id, new in zip(ids, new_jobs, strict=True)]


def _values(new: NewJob, now: datetime) -> tuple[Any, ...]:
    return inserted_values(new, now, to_json, _as_it_is)


def _as_it_is(moment: datetime) -> datetime:
    return moment  # asyncpg sends datetimes as timestamptz


Insert = Callable[[Sequence[NewJob], datetime], Awaitable[list[Job]]]
# What one caller's jobs can cause (a value PostgreSQL refuses, a row too
# large): worth trying each caller alone. A lost server or a timeout is not.
_ONE_CALLERS_FAULT = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


class InsertBatcher:
    """The inserts asked for in one loop turn, made by one call of ``insert``."""

    def __init__(self, insert: Insert) -> None:
        self._insert = insert
        self._waiting: list[tuple[Sequence[NewJob], datetime, asyncio.Future[list[Job]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def insert(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Job]] = loop.create_future()
        self._waiting.append((new_jobs, now, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._write(waiting))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _write(
        self, waiting: list[tuple[Sequence[NewJob], datetime, asyncio.Future[list[Job]]]]
    ) -> None:
        try:
            await self._write_all(waiting)
        finally:
            for _, _, future in waiting:  # cancelled (the loop is closing): so are they
                future.cancel()

    async def _write_all(
        self, waiting: list[tuple[Sequence[NewJob], datetime, asyncio.Future[list[Job]]]]
    ) -> None:
        if len(waiting) == 1:
            await _settle(waiting[0][2], self._insert(waiting[0][0], waiting[0][1]))
            return
        # The latest caller's time for all: no job is stored as inserted
        # before its caller asked, and each is as due as its caller saw it.
        now = max(asked for _, asked, _ in waiting)
        try:
            jobs = await self._insert([new for batch, _, _ in waiting for new in batch], now)
        except _ONE_CALLERS_FAULT:
            for batch, asked, future in waiting:
                await _settle(future, self._insert(batch, asked))
            return
        except Exception as error:
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for batch, _, future in waiting:
            if not future.done():
                future.set_result(jobs[start : start + len(batch)])
            start += len(batch)


async def _settle(future: asyncio.Future[list[Job]], inserting: Awaitable[list[Job]]) -> None:
    try:
        jobs = await inserting
    except Exception as error:
        if not future.done():
            future.set_exception(error)
    else:
        if not future.done():
            future.set_result(jobs)
