"""Keeps the service's long-running parts alive (the seed's OTP supervisor).

Each part is a coroutine that should run until the service stops. If one
raises, the supervisor logs it, marks the part as down in :class:`Health`
(so ``/health`` reports DEGRADED), waits with exponential backoff and starts
it again. A part marks itself healthy again with ``health.ok(name)`` once it
has done real work, so a part that crashes on every start stays DEGRADED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("servcore.supervisor")

_MIN_DELAY = 0.05
_MAX_DELAY = 5.0


class Health:
    """Which parts are down right now, and why."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}

    def down(self, part: str, reason: str) -> None:
        self._problems[part] = reason

    def ok(self, part: str) -> None:
        if self._problems and part in self._problems:
            del self._problems[part]
            log.info("%s recovered", part)

    def problems(self) -> dict[str, str]:
        return dict(self._problems)


class Supervisor:
    def __init__(
        self,
        health: Health,
        expected: tuple[type[Exception], ...] = (),
        *,
        min_delay: float = _MIN_DELAY,
        max_delay: float = _MAX_DELAY,
    ) -> None:
        self.health = health
        self._min_delay = min_delay
        self._max_delay = max_delay
        # Failures of the outside world (a lost database): logged in one
        # line, without the traceback that a fault in our own code gets.
        self._expected = expected
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, part: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` under supervision as ``part``."""
        if part in self._tasks:
            raise ValueError(f"{part} is already supervised")
        self._tasks[part] = asyncio.create_task(self._keep(part, run), name=part)

    async def _keep(self, part: str, run: Callable[[], Awaitable[None]]) -> None:
        delay = self._min_delay
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await run()
                return  # a part that returns has finished its work
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.restarts[part] = self.restarts.get(part, 0) + 1
                self.health.down(part, f"{type(error).__name__}: {error}")
                if loop.time() - started > self._max_delay * 2:
                    delay = self._min_delay  # it had been running well: a fresh failure
                if isinstance(error, self._expected):
                    log.warning("%s failed (%s); restarting in %.2f s", part, error, delay)
                else:
                    log.exception("%s crashed; restarting in %.2f s", part, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    async def finish(self, part: str, within: float) -> None:
        """Wait for a part that was asked to end on its own; cancel it after ``within`` s."""
        task = self._tasks.pop(part, None)
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=within)
        if not done:
            log.warning("%s did not stop within %.1f s; cancelling it", part, within)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self, part: str | None = None) -> None:
        """Cancel one part, or all of them, and wait until they are gone."""
        names = [part] if part is not None else list(self._tasks)
        tasks = [self._tasks.pop(name) for name in names if name in self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
