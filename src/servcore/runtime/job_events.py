"""The job events of :mod:`servcore.telemetry`, told from the runtime's outcomes.

On the hot path: with nothing attached a job costs two dictionary lookups
here, and what is built for handlers is built once per run (metrics, the
usual listener, add up to ~2 µs a job; see BENCHMARKS.md).
"""

from __future__ import annotations

import time
from typing import Any

from servcore.clock import Clock
from servcore.jobs import Job
from servcore.runtime.executor import Outcome
from servcore.telemetry import Telemetry

_END_EVENTS = frozenset(
    {"job.stop", "job.exception", "job.retry_scheduled", "job.discarded", "job.cancelled"}
)
_CUT_SHORT = {
    "cancelled": "stopped while running: the job was cancelled",
    "lost": "stopped while running: its lease was lost (rescued elsewhere)",
    "released": "stopped by a shutdown: back in the queue, attempt not spent",
}


class JobEvents:
    def __init__(self, telemetry: Telemetry, node: str, clock: Clock) -> None:
        self._telemetry = telemetry
        self._node = node
        self._clock = clock

    def started(self, job: Job) -> float:
        """Say the job starts; the start time to hand to :meth:`finished`."""
        telemetry = self._telemetry
        if telemetry.listening("job.start"):
            latency = _queue_latency(job)
            telemetry.emit("job.start", {"queue_latency": latency}, self._metadata(job))
        return time.perf_counter()

    def finished(
        self, job: Job, outcome: Outcome | None, started: float, *, ended: str = "cancelled"
    ) -> None:
        """Say how the job's run ended. ``None``: it did not end on its own, and
        ``ended`` says how it was cut short: ``cancelled``, ``lost`` (its lease,
        to a rescue elsewhere) or ``released`` (back to the queue at shutdown).

        Every ``job.start`` is followed by exactly one ``job.stop`` or
        ``job.exception``, in the same task.
        """
        telemetry = self._telemetry
        if not telemetry.listening_any(_END_EVENTS):
            return
        duration = time.perf_counter() - started
        since = job.started_at
        latency = 0.0 if since is None else max((since - job.run_at).total_seconds(), 0.0)
        measured = {"duration": duration, "queue_latency": latency}
        failure = outcome.failure if outcome is not None else None
        if outcome is not None and failure is None:
            # The common case, spelled out: it runs for every job.
            done = {
                "queue": job.queue,
                "task": job.task,
                "job_id": job.id,
                "attempt": job.attempt,
                "node": self._node,
                "trace_context": job.trace_context,
                "outcome": "done",
            }
            telemetry.emit("job.stop", measured, done)
            return
        delay = None
        if failure is None:
            kind, error = ended, _CUT_SHORT[ended]
        else:
            error = failure.error.error
            if failure.retry_at is not None:
                kind = "retry"
                delay = (failure.retry_at - failure.error.at).total_seconds()
            else:
                kind = "cancelled" if failure.cancel else "failed"
        telemetry.emit("job.exception", measured, self._metadata(job, outcome=kind, error=error))
        if delay is not None:
            retrying = self._metadata(job, error=error)
            telemetry.emit("job.retry_scheduled", {"delay": delay}, retrying)
        elif kind == "cancelled":
            telemetry.emit("job.cancelled", {}, self._metadata(job, reason=error))
        elif kind == "failed":
            telemetry.emit("job.discarded", {}, self._metadata(job, error=error))

    def _metadata(self, job: Job, **extra: Any) -> dict[str, Any]:
        return {
            "queue": job.queue,
            "task": job.task,
            "job_id": job.id,
            "attempt": job.attempt,
            "node": self._node,
            "trace_context": job.trace_context,
            **extra,
        }


def _queue_latency(job: Job) -> float:
    """Seconds from when the job was due to when it was claimed (never negative)."""
    if job.started_at is None:
        return 0.0
    return max((job.started_at - job.run_at).total_seconds(), 0.0)
