"""Periodic on its own: run_once every interval with the clock's now, behind
its gate, reporting health; a restart runs at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from servcore.maintenance.periodic import Periodic
from servcore.supervisor import Health
from servcore.testing import FakeClock
from tests.conftest import wait_for
from tests.unit.parts import T0

NAME = "upkeep"


class Calls:
    """run_once for a Periodic: notes each ``now`` and moves the clock on a second."""

    def __init__(self, clock: FakeClock, *, failing: int = 0) -> None:
        self.clock = clock
        self.at: list[datetime] = []
        self.failing = failing

    async def run_once(self, now: datetime) -> None:
        self.at.append(now)
        self.clock.advance(1)
        if len(self.at) <= self.failing:
            raise RuntimeError("upkeep failed")


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_runs_every_interval_with_the_clocks_now_and_reports_health() -> None:
    clock, health = FakeClock(T0), Health()
    health.down(NAME, "RuntimeError: earlier")
    calls = Calls(clock)
    periodic = Periodic(NAME, calls.run_once, interval=0.001, clock=clock, health=health)

    task = asyncio.create_task(periodic.run())
    try:
        await wait_for(lambda: len(calls.at) >= 3, message="three runs")
    finally:
        await stopped(task)

    assert calls.at[:3] == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert health.problems() == {}


async def test_the_first_run_waits_one_interval() -> None:
    clock = FakeClock(T0)
    calls = Calls(clock)
    periodic = Periodic(NAME, calls.run_once, interval=3600, clock=clock, health=Health())

    task = asyncio.create_task(periodic.run())
    for _ in range(5):
        await asyncio.sleep(0)  # let it start and reach its first wait
    await stopped(task)

    assert calls.at == []


async def test_a_closed_gate_skips_the_work_but_not_the_health_report() -> None:
    clock, health = FakeClock(T0), Health()
    health.down(NAME, "RuntimeError: earlier")
    calls = Calls(clock)
    leader = False
    periodic = Periodic(
        NAME, calls.run_once, interval=0.001, clock=clock, health=health, gate=lambda: leader
    )

    task = asyncio.create_task(periodic.run())
    try:
        await wait_for(lambda: not health.problems(), message="a health report")
        assert calls.at == []
        leader = True
        await wait_for(lambda: len(calls.at) >= 1, message="a run once the gate opens")
    finally:
        await stopped(task)


async def test_a_restart_runs_at_once_so_a_crash_is_not_reported_for_an_interval() -> None:
    clock, health = FakeClock(T0), Health()
    calls = Calls(clock, failing=1)
    periodic = Periodic(NAME, calls.run_once, interval=3600, clock=clock, health=health)
    first = asyncio.create_task(periodic.run())
    for _ in range(5):
        await asyncio.sleep(0)  # started: now waiting out its first hour
    await stopped(first)

    # As the supervisor does after a crash: run it again.
    with pytest.raises(RuntimeError, match="upkeep failed"):
        await asyncio.wait_for(periodic.run(), 5)
    health.down(NAME, "RuntimeError: upkeep failed")
    again = asyncio.create_task(periodic.run())
    try:
        await wait_for(lambda: not health.problems(), within=5, message="an immediate run")
    finally:
        await stopped(again)

    assert calls.at == [T0, T0 + timedelta(seconds=1)]
