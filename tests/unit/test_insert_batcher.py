"""The PostgreSQL store's group commit, alone: callers of one loop turn share
one insert, and a value one caller got wrong fails only that caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from servcore.jobs import Job, NewJob
from servcore.store.postgres.inserts import InsertBatcher

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeTable:
    def __init__(self) -> None:
        self.calls: list[tuple[int, datetime]] = []
        self.next_id = 1

    async def insert(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        self.calls.append((len(new_jobs), now))
        await asyncio.sleep(0)
        if any(new.queue == "bad" for new in new_jobs):
            raise asyncpg.DataError("invalid byte sequence")
        if any(new.queue == "down" for new in new_jobs):
            raise ConnectionError("server went away")
        jobs = [new.stored(self.next_id + n, now) for n, new in enumerate(new_jobs)]
        self.next_id += len(new_jobs)
        return jobs


def job(queue: str = "q") -> NewJob:
    return NewJob(payload={}, run_at=T0, queue=queue)


async def test_callers_of_one_turn_share_one_insert_at_the_latest_time() -> None:
    table = FakeTable()
    batcher = InsertBatcher(table.insert)
    times = [T0 + timedelta(seconds=n) for n in range(64)]

    answers = await asyncio.gather(*(batcher.insert([job(), job()], now) for now in times))

    assert table.calls == [(128, times[-1])]
    assert [j.id for jobs in answers for j in jobs] == list(range(1, 129))


async def test_a_bad_value_fails_only_its_caller() -> None:
    table = FakeTable()
    batcher = InsertBatcher(table.insert)

    good, bad, other = await asyncio.gather(
        batcher.insert([job()], T0),
        batcher.insert([job("bad")], T0),
        batcher.insert([job(), job()], T0),
        return_exceptions=True,
    )

    assert isinstance(bad, asyncpg.DataError)
    assert isinstance(good, list)
    assert isinstance(other, list)
    assert (len(good), len(other)) == (1, 2)
    assert [size for size, _ in table.calls] == [4, 1, 1, 2]


async def test_a_lost_server_fails_every_caller_at_once_without_retrying_each() -> None:
    table = FakeTable()
    batcher = InsertBatcher(table.insert)

    answers = await asyncio.gather(
        *(batcher.insert([job("down" if n == 0 else "q")], T0) for n in range(5)),
        return_exceptions=True,
    )

    assert all(isinstance(answer, ConnectionError) for answer in answers)
    assert len(table.calls) == 1


async def test_a_cancelled_caller_does_not_hold_up_the_others() -> None:
    table = FakeTable()
    batcher = InsertBatcher(table.insert)
    first = asyncio.ensure_future(batcher.insert([job()], T0))
    second = asyncio.ensure_future(batcher.insert([job()], T0))
    await asyncio.sleep(0)
    first.cancel()

    assert len(await second) == 1
    with pytest.raises(asyncio.CancelledError):
        await first
