"""Prometheus metrics: a telemetry handler that counts, and a collector that exports.

Events are counted into plain dictionaries as they happen (a few hundred
nanoseconds a job); ``prometheus_client`` builds the text exposition only
when ``/metrics`` is scraped. Each process exposes its own metrics (the
server and each ``servcore worker``): scrape them all; Prometheus adds the
``instance`` label.

Two kinds. *Per process* (counted here as this process runs jobs and answers
requests): ``sum`` them across processes. *Cluster-wide* (marked ◆: read from
the store by a :class:`~servcore.cluster_sample.ClusterSampler`, at most
once per ``sample_interval``, on any node, API-only ones too): every process
serves the same numbers, so take ``max`` (``max by (queue)``), never ``sum``.

=========================================== ======== ==================================
metric                                      type     labels
=========================================== ======== ==================================
servcore_jobs_total                         counter  queue, task, outcome (done, retry,
                                                     failed, cancelled, lost, released);
                                                     task "(unregistered)" for tasks
                                                     without a handler of their own
servcore_job_retries_total                  counter  queue, task
servcore_jobs_rescued_total                 counter
servcore_job_duration_seconds               histogram queue, task
servcore_job_queue_latency_seconds          histogram queue (run_at → start)
servcore_jobs_running                       gauge    queue, node (this process)
servcore_queue_depth ◆                      gauge    queue (ready to start)
servcore_queue_scheduled ◆                  gauge    queue
servcore_queue_running ◆                    gauge    queue (every node)
servcore_queue_oldest_job_age_seconds ◆     gauge    queue
servcore_queue_paused ◆                     gauge    queue
servcore_stored_jobs ◆                      gauge    status (available, scheduled,
                                                     running, done, failed, cancelled)
servcore_store_sample_age_seconds           gauge    (how old this process's ◆ sample is)
servcore_http_requests_total                counter  method, route, status
servcore_http_request_duration_seconds      histogram method, route
servcore_store_call_duration_seconds        histogram operation
=========================================== ======== ==================================
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from servcore.cluster_sample import ClusterSampler
from servcore.telemetry import EVENTS, EventHandler, Measurements, Metadata, Telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HANDLER_ID = "servcore-metrics"
UNREGISTERED = "(unregistered)"  # the task label of jobs whose task has no handler
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
FAST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1,
    2.5,
    10,
)

RunningJobs = Callable[[], Mapping[str, int]]


class _Histogram:
    __slots__ = ("buckets", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def exported(self) -> tuple[list[tuple[str, float]], float]:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return cumulative, self.total


class _TaskRecord:
    """Everything counted for one (queue, task): found with one lookup a job."""

    __slots__ = ("durations", "latencies", "outcomes")

    def __init__(self, latencies: _Histogram) -> None:
        self.outcomes: dict[str, int] = {}
        self.durations = _Histogram(JOB_BUCKETS)
        self.latencies = latencies  # the queue's, shared by its tasks


class Metrics(Collector):
    """Counts this process's telemetry; :meth:`render` is the ``/metrics`` body."""

    def __init__(
        self,
        telemetry: Telemetry,
        node: str,
        running: RunningJobs,
        known_task: Callable[[str], bool] = lambda task: True,
        cluster: ClusterSampler | None = None,
    ) -> None:
        self._telemetry = telemetry
        self.node = node
        self._running = running
        self.cluster = cluster  # the store's view, for the cluster-wide gauges
        # A client names a job's task: only registered ones become label values,
        # or anyone could grow the series without end.
        self._known_task = known_task
        self._handler_id = f"{HANDLER_ID}-{id(self):x}"
        self._tasks: dict[tuple[str, str], _TaskRecord] = {}
        self._rescued = 0
        self._latencies: dict[str, _Histogram] = {}
        self._requests: dict[tuple[str, str, str], int] = {}
        self._request_durations: dict[tuple[str, str], _Histogram] = {}
        self._store_calls: dict[str, _Histogram] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        # One handler per event, attached under its own id: no dispatch per call.
        self._handlers: dict[str, EventHandler] = {
            "job.stop": self._job_end,
            "job.exception": self._job_end,
            "job.rescued": self._rescue,
            "http.stop": self._request,
            "store.call": self._store_call,
        }
        assert set(self._handlers) <= set(EVENTS)

    def attach(self) -> None:
        self._telemetry.attach_many(self._handler_id, self._handlers)

    def detach(self) -> None:
        self._telemetry.detach(self._handler_id)

    def render(self) -> bytes:
        """The exposition, with the store sample held now (none is read)."""
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """The ``/metrics`` body: the store sample refreshed first if it is
        stale (waiting for it a bounded time, see ``ClusterSampler.fresh``)."""
        if self.cluster is not None:
            await self.cluster.fresh()
        return self.render()

    # -- counting (on the event loop, as events happen) -------------------

    def _job_end(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        key = (metadata["queue"], metadata["task"])
        record = self._tasks.get(key)
        if record is None:  # a new task here, or one without a handler
            if not self._known_task(key[1]):
                key = (key[0], UNREGISTERED)
            record = self._tasks.get(key)
            if record is None:
                latencies = self._latencies.setdefault(key[0], _Histogram(JOB_BUCKETS))
                record = self._tasks[key] = _TaskRecord(latencies)
        outcomes = record.outcomes
        outcome = metadata["outcome"]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        record.durations.observe(measurements["duration"])
        # Every run ends here exactly once: its queue latency is counted here too.
        record.latencies.observe(measurements["queue_latency"])

    def _rescue(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        self._rescued += int(measurements["count"])

    def _request(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        method, route = metadata["method"], metadata["route"]
        key = (method, route, str(metadata["status"]))
        self._requests[key] = self._requests.get(key, 0) + 1
        histogram = self._request_durations.get((method, route))
        if histogram is None:
            histogram = self._request_durations[(method, route)] = _Histogram(FAST_BUCKETS)
        histogram.observe(measurements["duration"])

    def _store_call(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        operation = metadata["operation"]
        histogram = self._store_calls.get(operation)
        if histogram is None:
            histogram = self._store_calls[operation] = _Histogram(FAST_BUCKETS)
        histogram.observe(measurements["duration"])

    # -- exporting (at scrape time) ----------------------------------------

    def collect(self) -> Iterator[Metric]:
        # list(...) copies in one C call: safe against the loop adding keys meanwhile.
        tasks = list(self._tasks.items())
        outcomes = [
            ((*key, outcome), count)
            for key, record in tasks
            for outcome, count in list(record.outcomes.items())
        ]
        yield _counter(
            "servcore_jobs",
            "Jobs run to an outcome, by queue, task and outcome.",
            ["queue", "task", "outcome"],
            outcomes,
        )
        yield _counter(
            "servcore_job_retries",
            "Failed attempts that will be retried.",
            ["queue", "task"],
            [(key[:2], count) for key, count in outcomes if key[2] == "retry"],
        )
        rescued = CounterMetricFamily(
            "servcore_jobs_rescued", "Jobs whose worker was lost, put back or failed."
        )
        rescued.add_metric([], self._rescued)
        yield rescued
        yield _histogram(
            "servcore_job_duration_seconds",
            "How long jobs ran.",
            ["queue", "task"],
            [(key, record.durations) for key, record in tasks],
        )
        yield _histogram(
            "servcore_job_queue_latency_seconds",
            "From when a job was due (run_at) to when it started.",
            ["queue"],
            [((queue,), h) for queue, h in list(self._latencies.items())],
        )
        running = GaugeMetricFamily(
            "servcore_jobs_running", "Jobs running in this process.", labels=["queue", "node"]
        )
        for queue, count in self._running().items():
            running.add_metric([queue, self.node], count)
        yield running
        yield from self._cluster_gauges()
        yield _counter(
            "servcore_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            list(self._requests.items()),
        )
        yield _histogram(
            "servcore_http_request_duration_seconds",
            "How long HTTP requests took to answer.",
            ["method", "route"],
            list(self._request_durations.items()),
        )
        yield _histogram(
            "servcore_store_call_duration_seconds",
            "How long store calls took, by operation.",
            ["operation"],
            [((operation,), h) for operation, h in list(self._store_calls.items())],
        )

    def _cluster_gauges(self) -> Iterator[Metric]:
        """The cluster-wide gauges, from the store sample held (none before the first)."""
        cluster = self.cluster
        sample = cluster.sample if cluster is not None else None
        if cluster is None or sample is None:
            return
        for name, field, documentation in (
            ("servcore_queue_depth", "available", "Jobs ready to start."),
            ("servcore_queue_scheduled", "scheduled", "Jobs waiting for their run_at."),
            ("servcore_queue_running", "running", "Jobs running on every node."),
            (
                "servcore_queue_oldest_job_age_seconds",
                "oldest_age",
                "How long the oldest ready job has waited.",
            ),
            ("servcore_queue_paused", "paused", "1 while the queue is paused."),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=["queue"])
            for queue in sample.queues:
                gauge.add_metric([queue.name], float(getattr(queue, field)))
            yield gauge
        counts = sample.counts
        stored = GaugeMetricFamily(
            "servcore_stored_jobs",
            "Jobs the store holds, by status (the store's, the same on every node).",
            labels=["status"],
        )
        for status, count in (
            ("available", counts.available),
            ("scheduled", counts.scheduled),
            ("running", counts.running),
            ("done", counts.done),
            ("failed", counts.failed),
            ("cancelled", counts.cancelled),
        ):
            stored.add_metric([status], float(count))
        yield stored
        yield GaugeMetricFamily(
            "servcore_store_sample_age_seconds",
            "Seconds since this process read the store sample behind the cluster-wide gauges.",
            value=cluster.age() or 0.0,
        )


def _counter(
    name: str, documentation: str, labels: list[str], values: list[tuple[Any, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in values:
        family.add_metric(list(key), value)
    return family


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    histograms: list[tuple[Any, _Histogram]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key, histogram in histograms:
        buckets, total = histogram.exported()
        family.add_metric(list(key), buckets, total)
    return family
