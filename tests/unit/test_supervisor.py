"""The supervisor and health on their own: restarts with backoff, health
down and up, finishing and stopping parts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from servcore.store.base import StoreError
from servcore.supervisor import Health, Supervisor
from tests.conftest import wait_for

PART = "part"


class Steered:
    """A part the test steers: each run waits for an order, then crashes,
    fails as the store would, returns, or serves (health ok, runs on)."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.orders: asyncio.Queue[str] = asyncio.Queue()
        self.runs = 0
        self.cancelled = 0

    async def run(self) -> None:
        self.runs += 1
        try:
            order = await self.orders.get()
            if order == "crash":
                raise RuntimeError(f"crash {self.runs}")
            if order == "store":
                raise StoreError("the database went away")
            if order == "serve":
                self.health.ok(PART)
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


# Backoff of 1, 2, 4, 4, … ms instead of 50 ms doubling up to 5 s.
FAST = {"min_delay": 0.001, "max_delay": 0.004}


def restart_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the supervisor logged before each restart, in order."""
    delays = []
    for record in caplog.records:
        if record.name == "servcore.supervisor" and "restarting in" in str(record.msg):
            assert isinstance(record.args, tuple)
            delay = record.args[-1]
            assert isinstance(delay, float)
            delays.append(delay)
    return delays


async def test_a_crashed_part_is_marked_down_restarted_and_up_once_it_works() -> None:
    health = Health()
    supervisor = Supervisor(health, **FAST)
    part = Steered(health)
    supervisor.start(PART, part.run)
    try:
        part.orders.put_nowait("crash")
        await wait_for(lambda: part.runs == 2, message="the restart")
        # Restarted, but down until it has done real work.
        assert health.problems() == {PART: "RuntimeError: crash 1"}
        assert supervisor.restarts == {PART: 1}

        part.orders.put_nowait("serve")
        await wait_for(lambda: not health.problems(), message="the part to be up")
        assert supervisor.restarts == {PART: 1}
    finally:
        await supervisor.stop()
    assert part.cancelled == 1


async def test_restarts_back_off_exponentially_up_to_a_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health()
    supervisor = Supervisor(health, **FAST)
    part = Steered(health)
    for _ in range(5):
        part.orders.put_nowait("crash")
    supervisor.start(PART, part.run)
    try:
        await wait_for(lambda: part.runs == 6, message="five restarts")
    finally:
        await supervisor.stop()

    assert restart_delays(caplog) == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert supervisor.restarts == {PART: 5}
    assert health.problems() == {PART: "RuntimeError: crash 5"}


async def test_the_backoff_starts_over_after_a_long_run(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    supervisor = Supervisor(health, **FAST)
    runs = 0

    async def crashes_after_a_while() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            # Up longer than twice the longest backoff: the next crash is fresh.
            await asyncio.sleep(0.02)
        if runs <= 4:
            raise RuntimeError("crash")
        await asyncio.Event().wait()

    supervisor.start(PART, crashes_after_a_while)
    try:
        await wait_for(lambda: runs == 5, message="four restarts")
    finally:
        await supervisor.stop()

    assert restart_delays(caplog) == [0.001, 0.002, 0.004, 0.001]


async def test_expected_failures_are_logged_in_one_line_others_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health()
    supervisor = Supervisor(health, expected=(StoreError,), **FAST)
    part = Steered(health)
    part.orders.put_nowait("store")
    part.orders.put_nowait("crash")
    supervisor.start(PART, part.run)
    try:
        await wait_for(lambda: part.runs == 3, message="two restarts")
    finally:
        await supervisor.stop()

    told = [r for r in caplog.records if r.name == "servcore.supervisor"]
    assert [(r.levelno, r.exc_info is not None) for r in told] == [
        (logging.WARNING, False),
        (logging.ERROR, True),
    ]
    assert "the database went away" in told[0].getMessage()


async def test_a_part_that_returns_is_done_and_finish_waits_for_it() -> None:
    health = Health()
    supervisor = Supervisor(health)
    part = Steered(health)
    supervisor.start(PART, part.run)
    part.orders.put_nowait("return")

    await asyncio.wait_for(supervisor.finish(PART, within=5), 5)

    assert (part.runs, part.cancelled) == (1, 0)
    assert supervisor.restarts == {}
    supervisor.start(PART, part.run)  # finished parts are no longer supervised
    await wait_for(lambda: part.runs == 2)
    await supervisor.stop(PART)
    assert part.cancelled == 1


async def test_finish_cancels_a_part_that_overstays(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    supervisor = Supervisor(health)
    part = Steered(health)  # given no order: never ends by itself
    supervisor.start(PART, part.run)
    await wait_for(lambda: part.runs == 1)

    await asyncio.wait_for(supervisor.finish(PART, within=0.01), 5)

    assert part.cancelled == 1
    assert any("did not stop within" in r.getMessage() for r in caplog.records)
    await supervisor.finish(PART, within=0.01)  # gone already: nothing to do
    assert part.cancelled == 1


async def test_a_part_is_supervised_once_and_stop_ends_them_all() -> None:
    health = Health()
    supervisor = Supervisor(health)
    first, second = Steered(health), Steered(health)
    supervisor.start("first", first.run)
    supervisor.start("second", second.run)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("first", first.run)
    await wait_for(lambda: first.runs == second.runs == 1)

    await supervisor.stop("first")
    assert (first.cancelled, second.cancelled) == (1, 0)
    await supervisor.stop()
    assert second.cancelled == 1
    await supervisor.stop()  # again: nothing left, no error
    assert (first.runs, second.runs) == (1, 1)


def test_health_lists_the_parts_that_are_down() -> None:
    health = Health()
    health.ok("never down")
    health.down("store", "StoreError: gone")
    health.down("queue", "RuntimeError: bug")
    problems = health.problems()
    problems.clear()  # a copy: the health itself is untouched

    health.ok("queue")

    assert health.problems() == {"store": "StoreError: gone"}
