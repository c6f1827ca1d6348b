"""Inserts from many callers in one loop turn become one statement.

Under HTTP load, dozens of requests submit one job each in the same turn of
the event loop. Handing each to the writer as its own operation costs a
statement, an id read-back and a hand-off per job; gathering them first
costs one ``executemany`` for all. Each caller still gets only its own
result: if the combined insert fails, every caller's rows are tried again
under a savepoint of their own, so one bad batch fails only its caller.
The queues that got rows are told (``tell``) for other processes to hear
once the transaction commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from servcore.store.job_columns import INSERTED

Row = tuple[Any, ...]
Submit = Callable[[Callable[[sqlite3.Connection], list[int | Exception]]], asyncio.Future[Any]]
Tell = Callable[[str], None]

# A row: INSERTED's values, then inserted_at (see store.sqlite.store._insert_row).
_NAMES = (*(name for name, _ in INSERTED), "inserted_at")
_INSERT = "INSERT INTO jobs ({}) VALUES ({})".format(
    ", ".join(_NAMES), ", ".join("?" * len(_NAMES))
)


_INSERT_ONE = _INSERT + " RETURNING id"


def insert_one(conn: sqlite3.Connection, row: Row) -> int:
    """Insert ``row``; its id (one statement, where insert_rows takes two).
    Read to the end, so that outside a transaction the statement's own
    transaction has committed when this returns."""
    ((found,),) = conn.execute(_INSERT_ONE, row).fetchall()
    return int(found)


def insert_rows(conn: sqlite3.Connection, rows: list[Row]) -> int:
    """Insert ``rows``; the id of the first. One writer inside one
    transaction, so AUTOINCREMENT ids of one statement are consecutive."""
    conn.executemany(_INSERT, rows)
    last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last - len(rows) + 1


def _insert_batches(conn: sqlite3.Connection, batches: list[list[Row]]) -> list[int | Exception]:
    if len(batches) == 1:
        return [insert_rows(conn, batches[0])]
    conn.execute("SAVEPOINT combined")
    try:
        first = insert_rows(conn, [row for batch in batches for row in batch])
    except sqlite3.Error:
        conn.execute("ROLLBACK TO combined")
        conn.execute("RELEASE combined")
        return [_insert_alone(conn, batch) for batch in batches]
    conn.execute("RELEASE combined")
    firsts: list[int | Exception] = []
    for batch in batches:
        firsts.append(first)
        first += len(batch)
    return firsts


def _insert_alone(conn: sqlite3.Connection, rows: list[Row]) -> int | Exception:
    conn.execute("SAVEPOINT alone")
    try:
        first = insert_rows(conn, rows)
    except sqlite3.Error as error:
        conn.execute("ROLLBACK TO alone")
        conn.execute("RELEASE alone")
        return error
    conn.execute("RELEASE alone")
    return first


class InsertCoalescer:
    """Gathers the inserts of one loop turn into one writer operation."""

    def __init__(self, submit: Submit, tell: Tell) -> None:
        self._submit = submit
        self._tell = tell
        self._waiting: list[tuple[list[Row], asyncio.Future[int]]] = []

    async def insert(self, rows: list[Row]) -> int:
        """Store ``rows`` (all or none); the id of the first, once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiting.append((rows, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        batches = [rows for rows, _ in waiting]
        tell = self._tell

        def insert(conn: sqlite3.Connection) -> list[int | Exception]:
            firsts = _insert_batches(conn, batches)
            for batch, first in zip(batches, firsts, strict=True):
                if not isinstance(first, Exception):
                    for queue in {row[0] for row in batch}:  # a row starts with its queue
                        tell(queue)
            return firsts

        try:
            written = self._submit(insert)
        except Exception as error:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        written.add_done_callback(lambda done: _answer(waiting, done))


def _answer(
    waiting: list[tuple[list[Row], asyncio.Future[int]]], done: asyncio.Future[Any]
) -> None:
    if done.cancelled():
        outcomes: list[Any] = [asyncio.CancelledError()] * len(waiting)
    elif done.exception() is not None:
        outcomes = [done.exception()] * len(waiting)
    else:
        outcomes = done.result()
    for (_, future), outcome in zip(waiting, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
