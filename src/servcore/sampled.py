"""A value read from the store at most once per interval, which a reader
waits for a bounded time (``/health``'s warnings: a load balancer may ask
many times a second, and the read behind them grows with the waiting jobs).

A value is fresh while both the service's clock and the process's timer say
it is younger than the interval (the clock alone would never age under a
test's fake clock standing still; the timer alone would not see a fake clock
moved on). A stale value starts one read (however many readers ask); a
reader waits for it at most ``wait`` seconds, then gets the last value, and
the read goes on for the next reader. A read that fails keeps the last value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from servcore.clock import Clock

T = TypeVar("T")
log = logging.getLogger("servcore")


class Sampled(Generic[T]):
    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        initial: T,
        clock: Clock,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.value = initial
        self._clock = clock
        self._timer = timer
        self._read_at: tuple[datetime, float] | None = None  # when the last read ended
        self._reading: asyncio.Task[None] | None = None

    def _fresh(self, interval: float) -> bool:
        if self._read_at is None:
            return False
        at, timed = self._read_at
        by_clock = (self._clock.now() - at).total_seconds()
        return 0 <= by_clock < interval and self._timer() - timed < interval

    async def get(self, interval: float, wait: float) -> T:
        """The value, read again first (waiting at most ``wait`` s) when it is
        older than ``interval`` s."""
        if self._fresh(interval):
            return self.value
        reading = self._reading
        if reading is not None and reading.get_loop() is not asyncio.get_running_loop():
            reading = None  # left on an event loop that is gone
        if reading is None or reading.done():
            reading = self._reading = asyncio.create_task(self._read_once(), name="sampled read")
        # shield: a reader that gives up leaves the read running for the next.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), wait)
        return self.value

    async def _read_once(self) -> None:
        try:
            self.value = await self._read()
        except Exception as error:  # the last value stands; /health names what is down
            log.debug("Could not read %s: %s", self._read, error)
        self._read_at = (self._clock.now(), self._timer())

    async def close(self) -> None:
        """Stop a read under way (the store is about to close under it)."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
