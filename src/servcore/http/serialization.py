"""Jobs and counts as the JSON the API returns (the seed's fields first)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from servcore.cron import CronEntry
from servcore.job_reads import JobCounts, NodeInfo, QueueInfo
from servcore.jobs import Job
from servcore.timestamps import format_timestamp

encode = msgspec.json.Encoder().encode


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def job_to_json(job: Job, now: datetime) -> dict[str, Any]:
    return {
        "id": job.id,
        "payload": job.payload,
        "status": job.status.value,
        "inserted_at": format_timestamp(job.inserted_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "result": job.result,
        "queue": job.queue,
        "task": job.task,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": format_timestamp(job.run_at),
        "scheduled": job.is_scheduled(now),
        "errors": [
            {
                "attempt": error.attempt,
                "at": format_timestamp(error.at),
                "error": error.error,
                "traceback": error.traceback,
            }
            for error in job.errors
        ],
        "unique_key": job.unique_key,
        "timeout": job.timeout,
        "backoff": job.backoff,
        "locked_by": job.locked_by,
        "locked_until": _time(job.locked_until),
        "lease_token": job.lease_token,
        "rescued": job.rescued,
        "result_ttl": job.result_ttl,
        "trace_context": job.trace_context,
    }


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
    entry: CronEntry, last_tick: datetime | None, next_tick: datetime
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
    }


def queue_to_json(info: QueueInfo, concurrency: int | None, now: datetime) -> dict[str, Any]:
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
    }
