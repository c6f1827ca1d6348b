"""A task that runs now and then every ``interval`` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from servcore.clock import Clock
from servcore.supervisor import Health


class Periodic:
    """Runs ``run_once(now)`` every ``interval`` s; crashes go to the supervisor.

    The first run is one interval after start: the service runs what must
    happen at once (rescuing a dead node's jobs) itself, before it claims.
    """

    def __init__(
        self,
        name: str,
        run_once: Callable[[datetime], Awaitable[object]],
        *,
        interval: float,
        clock: Clock,
        health: Health,
    ) -> None:
        self.name = name
        self.run_once = run_once
        self._interval = interval
        self._clock = clock
        self._health = health

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.run_once(self._clock.now())
            self._health.ok(self.name)
