"""A value read at most once per interval; readers wait a bounded time."""

from __future__ import annotations

import asyncio

from servcore.sampled import Sampled
from servcore.store.base import StoreError
from servcore.testing import FakeClock
from tests.unit.parts import T0


class Reads:
    """Counts reads; each returns the count, once ``gate`` is open."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self) -> int:
        self.count += 1
        await self.gate.wait()
        if self.fail:
            raise StoreError("the database went away")
        return self.count


class Timer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_fresh_value_is_served_without_reading() -> None:
    clock, timer, reads = FakeClock(T0), Timer(), Reads()
    sampled = Sampled(reads, 0, clock, timer=timer)
    assert await sampled.get(5, wait=1) == 1
    timer.now += 4.9
    clock.advance(4.9)
    assert await sampled.get(5, wait=1) == 1
    assert reads.count == 1


async def test_either_clock_moving_past_the_interval_reads_again() -> None:
    clock, timer, reads = FakeClock(T0), Timer(), Reads()
    sampled = Sampled(reads, 0, clock, timer=timer)
    await sampled.get(5, wait=1)
    clock.advance(5)  # the service's clock (a test's fake one) moved on
    assert await sampled.get(5, wait=1) == 2
    timer.now += 5  # the process's timer did, the clock stood still
    assert await sampled.get(5, wait=1) == 3


async def test_many_readers_share_one_read_and_wait_at_most_their_bound() -> None:
    clock, timer, reads = FakeClock(T0), Timer(), Reads()
    sampled = Sampled(reads, 0, clock, timer=timer)
    reads.gate.clear()  # the store does not answer
    answers = await asyncio.gather(*(sampled.get(5, wait=0.05) for _ in range(10)))
    assert answers == [0] * 10  # the last value (none yet), within the bound
    assert reads.count == 1
    reads.gate.set()
    assert await sampled.get(5, wait=5) == 1  # the same read, landed
    assert reads.count == 1
    await sampled.close()


async def test_a_failed_read_keeps_the_last_value() -> None:
    clock, timer, reads = FakeClock(T0), Timer(), Reads()
    sampled = Sampled(reads, 0, clock, timer=timer)
    assert await sampled.get(5, wait=1) == 1
    reads.fail = True
    timer.now += 5
    assert await sampled.get(5, wait=1) == 1
    assert reads.count == 2
