"""LeaseLeadership: who leads, until when, and handing over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

from servcore.leadership.base import LeaderTerm
from servcore.leadership.lease import LeaseLeadership
from servcore.store import MemoryStore
from servcore.store.base import StoreError
from servcore.testing import FakeClock
from tests.conftest import wait_for

LEASE = 0.3  # seconds; short, so that a lapse is seen quickly


class Unreachable(MemoryStore):
    """A store that stops answering lease requests when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def seek_leadership(self, node: str, now: datetime, until: datetime) -> LeaderTerm | None:
        if self.down:
            raise StoreError("the database is gone")
        return await super().seek_leadership(node, now, until)


def nodes(store: MemoryStore, clock: FakeClock) -> tuple[LeaseLeadership, LeaseLeadership]:
    return (
        LeaseLeadership(store, "a", lease=LEASE, clock=clock),
        LeaseLeadership(store, "b", lease=LEASE, clock=clock),
    )


async def test_a_leader_that_stops_renewing_stops_leading_after_one_lease() -> None:
    clock = FakeClock()
    a, b = nodes(MemoryStore(), clock)
    held = await a.ask_once()
    sent = time.monotonic()
    assert held is not None
    assert a.term() == held
    assert await b.ask_once() is None

    # a is frozen: it asks no more. Its own count runs out with the lease.
    await wait_for(lambda: not a.is_leader(), within=5, message="a to stop leading")
    assert time.monotonic() - sent >= LEASE * 0.9
    clock.advance(LEASE)
    taken = await b.ask_once()
    assert taken is not None
    assert taken.term > held.term
    # a wakes and asks: the lease is b's.
    assert await a.ask_once() is None
    assert not a.is_leader()


async def test_losing_the_store_keeps_leadership_only_until_the_lease_runs_out() -> None:
    store = Unreachable()
    a = LeaseLeadership(store, "a", lease=LEASE, clock=FakeClock())
    assert await a.ask_once() is not None
    store.down = True
    assert await a.ask_once() is not None  # within the lease: still leading
    await wait_for(lambda: not a.is_leader(), within=5, message="a to stop leading")
    assert await a.ask_once() is None


async def test_a_stopped_leader_hands_over_at_once() -> None:
    clock = FakeClock()
    a, b = nodes(MemoryStore(), clock)
    running = asyncio.create_task(a.run())
    await wait_for(a.is_leader, message="a to lead")
    held = a.term()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    taken = await b.ask_once()  # the clock has not moved: a resigned
    assert taken is not None
    assert held is not None
    assert taken.term > held.term


def test_nodes_ask_at_least_every_second_and_three_times_a_lease() -> None:
    clock = FakeClock()
    assert LeaseLeadership(MemoryStore(), "a", lease=30, clock=clock).interval == 1.0
    assert LeaseLeadership(MemoryStore(), "a", lease=0.9, clock=clock).interval == 0.3
