"""A task that runs now and then every ``interval`` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from servcore.clock import Clock
from servcore.supervisor import Health


class Periodic:
    """Runs ``run_once(now)`` at start and every ``interval`` s; crashes go to the supervisor."""

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
            await self.run_once(self._clock.now())
            self._health.ok(self.name)
            await asyncio.sleep(self._interval)
