"""A service's Prometheus metrics and OpenTelemetry tracing, attached and
detached as its telemetry settings say.

Any node, workers or not, serves the store's view of every queue (a
:class:`~servcore.cluster_sample.ClusterSampler`); what this process did is
counted by :class:`~servcore.metrics.Metrics` from the telemetry events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from servcore.clock import Clock
from servcore.cluster_sample import ClusterSampler
from servcore.config import TelemetrySettings
from servcore.job_reads import JobCounts, QueueInfo
from servcore.metrics import Metrics
from servcore.telemetry import Telemetry
from servcore.tracing import Tracing


class ServiceTelemetry:
    def __init__(
        self,
        telemetry: Telemetry,
        clock: Clock,
        *,
        known_task: Callable[[str], bool],
        running_jobs: Callable[[], dict[str, int]],
        active_queues: Callable[[], Awaitable[list[QueueInfo]]],
        job_totals: Callable[[], Awaitable[JobCounts]],
    ) -> None:
        self.telemetry = telemetry
        self._clock = clock
        self._known_task = known_task
        self._running_jobs = running_jobs
        self._active_queues = active_queues
        self._job_totals = job_totals
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        # A pipeline's service with a store of its own: its events reach the
        # parent's telemetry (counted once, there), and its jobs carry the
        # parent's trace context.
        self._parent: ServiceTelemetry | None = None

    def follow(self, parent: ServiceTelemetry) -> None:
        self._parent = parent

    def apply(self, node: str, settings: TelemetrySettings) -> None:
        """Attach or detach metrics and tracing as ``settings`` say."""
        if settings.metrics and self.metrics is None:
            cluster = ClusterSampler(
                self._active_queues,
                self._job_totals,
                self._clock,
                interval=settings.sample_interval,
            )
            self.metrics = Metrics(
                self.telemetry,
                node,
                self._running_jobs,
                known_task=self._known_task,
                cluster=cluster,
            )
            self.metrics.attach()
        elif not settings.metrics and self.metrics is not None:
            self.metrics.detach()
            self.metrics = None
        if self.metrics is not None:
            self.metrics.node = node
            if self.metrics.cluster is not None:
                self.metrics.cluster.interval = settings.sample_interval
        if self._parent is not None:
            return
        if settings.tracing and self.tracing is None:
            self.enable_tracing()
        elif not settings.tracing and self.tracing is not None:
            self.tracing.detach()
            self.tracing = None

    async def close(self) -> None:
        """Before the store closes: no sample is read from it any more."""
        if self.metrics is not None and self.metrics.cluster is not None:
            await self.metrics.cluster.close()

    def enable_tracing(self, tracer_provider: Any = None) -> Tracing:
        """Spans from now on (``tracer_provider`` defaults to the global one)."""
        if self.tracing is not None:
            self.tracing.detach()
        self.tracing = Tracing(self.telemetry, tracer_provider)
        self.tracing.attach()
        return self.tracing

    def trace_context(self) -> str | None:
        if self._parent is not None:
            return self._parent.trace_context()
        return self.tracing.trace_context() if self.tracing is not None else None
