"""The store sample behind the cluster-wide gauges: read at most once per
interval, one read at a time, a scrape's wait bounded, the last sample served
when the store is slow or down."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from servcore import Service, ServiceConfig
from servcore.cluster_sample import ClusterSampler
from servcore.job_reads import JobCounts, QueueInfo
from servcore.store import MemoryStore
from servcore.telemetry import Telemetry
from servcore.testing import FakeClock
from tests.conftest import wait_for
from tests.unit.parts import T0

INTERVAL = 5.0


class Timer:
    """A monotonic timer moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeStore:
    """``list_queues`` and ``count_jobs`` for a sampler: counted, and held
    back while ``gate`` is clear, or failing while ``down``."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False
        self.depth = 3
        self.done = 7
        self.emptied = False

    async def list_queues(self) -> list[QueueInfo]:
        self.reads += 1
        await self.gate.wait()
        if self.down:
            raise OSError("store unreachable")
        if self.emptied:  # no waiting or running jobs left: not listed
            return []
        oldest = T0 - timedelta(seconds=2)
        return [QueueInfo("email", False, self.depth, 1, 2, 0, 0, 0, oldest)]

    async def count_jobs(self) -> JobCounts:
        await self.gate.wait()
        if self.down:
            raise OSError("store unreachable")
        return JobCounts(queued=self.depth + 1, running=2, done=self.done, scheduled=1)


def sampler_of(store: FakeStore, timer: Timer, wait: float = 0.5) -> ClusterSampler:
    return ClusterSampler(
        store.list_queues,
        store.count_jobs,
        FakeClock(T0),
        interval=INTERVAL,
        wait=wait,
        timer=timer,
    )


async def test_two_quick_scrapes_read_the_store_once() -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer)
    first = await sampler.fresh()
    timer.now += 1.0
    second = await sampler.fresh()
    assert store.reads == 1
    assert second is first
    assert first is not None
    (email,) = first.queues
    assert (email.available, email.scheduled, email.running) == (3, 1, 2)
    assert email.oldest_age == 2.0
    assert (first.counts.done, first.counts.available) == (7, 3)
    assert sampler.age() == 1.0


async def test_a_stale_sample_is_read_again() -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer)
    await sampler.fresh()
    store.depth = 0
    timer.now += INTERVAL
    sample = await sampler.fresh()
    assert store.reads == 2
    assert sample is not None
    assert sample.queues[0].available == 0


async def test_scrapes_at_once_share_one_read() -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer)
    store.gate.clear()
    scrapes = [asyncio.create_task(sampler.fresh()) for _ in range(5)]
    await wait_for(lambda: store.reads == 1, message="the one read to start")
    store.gate.set()
    samples = await asyncio.gather(*scrapes)
    assert store.reads == 1
    assert all(sample is samples[0] is not None for sample in samples)


async def test_a_slow_store_holds_a_scrape_no_longer_than_the_wait() -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer, wait=0.05)
    kept = await sampler.fresh()
    store.gate.clear()  # the store hangs
    timer.now += INTERVAL
    started = time.monotonic()
    served = await sampler.fresh()
    assert time.monotonic() - started < 2.0  # 0.05 s, with room for a busy machine
    assert served is kept  # the last sample
    assert store.reads == 2
    # Asked again while that read still hangs: no second read, the last sample.
    assert await sampler.fresh() is kept
    assert store.reads == 2
    store.depth = 9
    store.gate.set()  # the read lands in the cache for the next scrape
    await wait_for(lambda: sampler.sample is not kept, message="the late read to land")
    late = await sampler.fresh()
    assert late is not None
    assert late.queues[0].available == 9
    assert store.reads == 2


async def test_a_failing_store_serves_the_last_sample_and_is_asked_once_an_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer)
    kept = await sampler.fresh()
    store.down = True
    timer.now += INTERVAL
    assert await sampler.fresh() is kept
    assert await sampler.fresh() is kept
    assert store.reads == 2
    assert "could not sample the store: store unreachable" in caplog.text
    store.down = False
    timer.now += INTERVAL
    assert await sampler.fresh() is not kept
    assert store.reads == 3


async def test_a_queue_that_empties_reads_zero_rather_than_vanishing() -> None:
    store, timer = FakeStore(), Timer()
    sampler = sampler_of(store, timer)
    await sampler.fresh()
    store.emptied = True
    timer.now += INTERVAL
    sample = await sampler.fresh()
    assert sample is not None
    (email,) = sample.queues
    assert (email.name, email.available, email.running, email.oldest_age) == ("email", 0, 0, 0)


async def test_a_services_metrics_read_the_store_once_for_two_quick_scrapes() -> None:
    telemetry = Telemetry()
    service = Service(
        MemoryStore(),
        config=ServiceConfig(node="api", sample_interval=60.0),
        telemetry=telemetry,
    )
    calls: list[str] = []
    telemetry.attach("calls", ["store.call"], lambda e, m, d: calls.append(d["operation"]))
    await service.start(workers=False)
    try:
        await service.enqueue("resize", queue="images")
        assert service.metrics is not None
        first = await service.metrics.scrape()
        second = await service.metrics.scrape()
    finally:
        await service.stop()
    assert calls.count("list_queues") == 1
    assert calls.count("count_jobs") == 1
    for body in (first, second):
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }
        assert samples[("servcore_queue_depth", (("queue", "images"),))] == 1
        assert samples[("servcore_stored_jobs", (("status", "available"),))] == 1
        assert samples[("servcore_stored_jobs", (("status", "done"),))] == 0


async def test_close_stops_a_read_under_way() -> None:
    from servcore.clock import FakeClock
    from servcore.cluster_sample import ClusterSampler
    from servcore.job_reads import JobCounts

    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hanging_queues() -> list[QueueInfo]:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return []

    async def counts() -> JobCounts:
        return JobCounts()

    sampler = ClusterSampler(hanging_queues, counts, FakeClock(T0), interval=5, wait=0.01)
    assert await sampler.fresh() is None  # gave up waiting; the read goes on
    assert started.is_set()
    await sampler.close()
    assert cancelled.is_set()
