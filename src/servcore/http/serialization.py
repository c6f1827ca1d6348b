"""Jobs and counts as the JSON the API returns (the seed's fields first)."""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from servcore.cron import CronEntry
from servcore.job_reads import JobCounts, NodeInfo, QueueInfo
from servcore.jobs import DEFAULT_MAX_ATTEMPTS, Job, JobError, JobStatus
from servcore.tasks import TaskSpec
from servcore.timestamps import format_timestamp

encode = msgspec.json.Encoder().encode


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _status(status: JobStatus) -> str:
    return status.value


def _errors(errors: tuple[JobError, ...]) -> list[dict[str, Any]]:
    return [
        {
            "attempt": error.attempt,
            "at": format_timestamp(error.at),
            "error": error.error,
            "traceback": error.traceback,
            "started_at": _time(error.started_at),
        }
        for error in errors
    ]


# How a Job field's value becomes JSON, by the field's type (None: as it is).
_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    datetime: format_timestamp,
    datetime | None: _time,
    JobStatus: _status,
    tuple[JobError, ...]: _errors,
}
# The seed's fields first, then the rest in the order Job declares them.
_SEED_FIELDS = ("id", "payload", "status", "inserted_at", "started_at", "finished_at", "result")


def _job_fields() -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    hints = typing.get_type_hints(Job)
    names = [*_SEED_FIELDS, *(n for n in Job.__struct_fields__ if n not in _SEED_FIELDS)]
    return tuple((name, _CONVERTERS.get(hints[name])) for name in names)


# Every field of Job appears in its JSON, so a new field needs no change here.
JOB_FIELDS = _job_fields()


def job_to_json(job: Job, now: datetime) -> dict[str, Any]:
    answer = {
        name: getattr(job, name) if convert is None else convert(getattr(job, name))
        for name, convert in JOB_FIELDS
    }
    answer["scheduled"] = job.is_scheduled(now)
    return answer


def counts_to_json(counts: JobCounts) -> dict[str, int]:
    return {
        "queued": counts.queued,
        "running": counts.running,
        "done": counts.done,
        "failed": counts.failed,
        "total": counts.total,
        "cancelled": counts.cancelled,
        "scheduled": counts.scheduled,
        "available": counts.available,
    }


def node_to_json(node: NodeInfo) -> dict[str, Any]:
    return {
        "node": node.node,
        "queues": list(node.queues),
        "leader": node.leader,
        "started_at": format_timestamp(node.started_at),
        "heartbeat_at": format_timestamp(node.heartbeat_at),
    }


def cron_to_json(
    entry: CronEntry, last_tick: datetime | None, next_tick: datetime, last_job_id: int | None
) -> dict[str, Any]:
    template = entry.template
    return {
        "name": entry.name,
        "expression": str(entry.expression),
        "timezone": entry.timezone.key,
        "task": template.task,
        "queue": template.queue,
        "payload": template.payload,
        "priority": template.priority,
        "max_attempts": template.max_attempts,
        "last_run_at": _time(last_tick),
        "next_run_at": format_timestamp(next_tick),
        "last_job_id": last_job_id,
    }


def queue_to_json(
    info: QueueInfo, concurrency: int | None, now: datetime, *, unserved: bool = False
) -> dict[str, Any]:
    """``unserved``: jobs have been ready for over a minute and no live worker
    node runs the queue (``job_reads.unserved_queues``)."""
    oldest = info.oldest_available_at
    return {
        "name": info.name,
        "paused": info.paused,
        "depth": info.available,
        "scheduled": info.scheduled,
        "running": info.running,
        "done": info.done,
        "failed": info.failed,
        "cancelled": info.cancelled,
        "concurrency": concurrency,
        "oldest_job_age": None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        "unserved": unserved,
    }


def task_to_json(spec: TaskSpec, queue: str) -> dict[str, Any]:
    """A registered task and what its jobs get unless a request says otherwise."""
    return {
        "name": spec.name,
        "queue": queue,
        "max_attempts": spec.max_attempts or DEFAULT_MAX_ATTEMPTS,
        "timeout": spec.timeout,
        "backoff": None if spec.backoff is None else spec.backoff.base,
        "executor": spec.executor,
    }
