"""A task that runs now and then every ``interval`` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from servcore.clock import Clock
from servcore.supervisor import Health


class Periodic:
    """Runs ``run_once(now)`` every ``interval`` s while ``gate()`` allows it
    (leadership, for once-per-cluster work); crashes go to the supervisor.

    The first run is one interval after start: the service runs what must
    happen at once (rescuing a dead node's jobs) itself, before it claims.
    After a crash, the supervisor's restart runs at once, so the part is not
    reported down for a whole interval.
    """

    def __init__(
        self,
        name: str,
        run_once: Callable[[datetime], Awaitable[object]],
        *,
        interval: float,
        clock: Clock,
        health: Health,
        gate: Callable[[], bool] = lambda: True,
    ) -> None:
        self.name = name
        self.run_once = run_once
        self._interval = interval
        self._clock = clock
        self._health = health
        self._gate = gate
        self._started = False

    async def run(self) -> None:
        if self._started:
            await self._run_and_report()
        self._started = True
        while True:
            await asyncio.sleep(self._interval)
            await self._run_and_report()

    async def _run_and_report(self) -> None:
        if self._gate():
            await self.run_once(self._clock.now())
        self._health.ok(self.name)
