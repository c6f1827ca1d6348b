"""The store's view of the whole cluster — queue depths and job totals —
read at most once per ``sample_interval`` and kept, for ``/metrics``.

These numbers come from the one store every node shares, so any node can
serve them, an API-only node as well as a worker, and all serve the same.
A scrape never waits long for them::

    scrape ──▶ sample fresh? ── yes ─────────────────────────────▶ serve it
                   │ no
                   ▼
               a read under way? ── no: start one (one at a time, whoever asks)
                   │
                   ▼
               wait for it, at most ``wait`` s ──▶ serve the newest sample there is

A read that outlives the wait goes on and lands here for the next scrape. A
read is attempted at most once per ``interval`` whatever its outcome, so a
slow or failing store is asked no more often than a healthy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from servcore.clock import Clock
from servcore.job_reads import JobCounts, QueueInfo

log = logging.getLogger("servcore")

SCRAPE_WAIT = 0.5  # seconds a scrape waits for a new sample before serving the last


@dataclass(frozen=True, slots=True)
class QueueSample:
    name: str
    paused: bool
    available: int
    scheduled: int
    running: int  # on every node
    oldest_age: float  # seconds the oldest ready job has been due, 0 when none


@dataclass(frozen=True, slots=True)
class ClusterSample:
    queues: tuple[QueueSample, ...]
    counts: JobCounts
    taken_at: float  # the sampler's timer (monotonic seconds) when the read ended


class ClusterSampler:
    """Reads ``list_queues`` (waiting and running jobs by queue) and
    ``count_jobs`` (jobs by status) together; see the module docstring."""

    def __init__(
        self,
        list_queues: Callable[[], Awaitable[list[QueueInfo]]],
        count_jobs: Callable[[], Awaitable[JobCounts]],
        clock: Clock,
        *,
        interval: float,
        wait: float = SCRAPE_WAIT,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list_queues = list_queues
        self._count_jobs = count_jobs
        self._clock = clock
        self.interval = interval
        self.wait = wait
        self._timer = timer
        self.sample: ClusterSample | None = None
        self._tried_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None
        self._seen: set[str] = set()  # queues sampled once: an emptied one reads 0, not gone
        self._failing = False

    def age(self) -> float | None:
        """Seconds since the sample served was read (None before the first)."""
        return None if self.sample is None else self._timer() - self.sample.taken_at

    async def fresh(self) -> ClusterSample | None:
        """The sample to serve now: the kept one while it is fresh, else a new
        one if the store answers within ``wait`` s, else the kept one."""
        reading = self._reading
        if reading is not None and reading.get_loop() is not asyncio.get_running_loop():
            reading = None  # left behind on an event loop that is gone (tests run many)
        if reading is None or reading.done():
            if self._timer() - self._tried_at < self.interval:
                return self.sample
            self._tried_at = self._timer()
            reading = self._reading = asyncio.create_task(self._read(), name="cluster sample")
        # shield: a scrape that gives up (or is cancelled) leaves the read running.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), self.wait)
        return self.sample

    async def close(self) -> None:
        """Stop a read under way (the store is about to close under it)."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def _read(self) -> None:
        # Cost: list_queues(active_only=True) reads waiting and running jobs
        # only, by index (what the worker's queue sampler reads). count_jobs
        # counts every job the store keeps, finished ones included, so it
        # grows with the history that retention keeps: on SQLite an index-only
        # count (~3 ms per 100,000 jobs here, see BENCHMARKS.md), on
        # PostgreSQL a scan of the table. The cheapest read of totals by
        # status the stores offer; at most once per interval, and only when
        # someone scrapes.
        try:
            infos, counts = await asyncio.gather(self._list_queues(), self._count_jobs())
        except Exception as error:  # a scrape serves the last sample; /health tells why
            if not self._failing:
                log.warning("Metrics: could not sample the store: %s", error)
            self._failing = True
            return
        if self._failing:
            log.info("Metrics: sampling the store again")
        self._failing = False
        now = self._clock.now()
        queues = {
            info.name: QueueSample(
                info.name,
                info.paused,
                info.available,
                info.scheduled,
                info.running,
                _age(now, info.oldest_available_at),
            )
            for info in infos
        }
        self._seen |= queues.keys()
        for gone in self._seen - queues.keys():
            queues[gone] = QueueSample(gone, False, 0, 0, 0, 0.0)
        self.sample = ClusterSample(
            tuple(queues[name] for name in sorted(queues)), counts, self._timer()
        )


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
