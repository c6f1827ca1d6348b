"""The per-queue tally both SQL stores run for ``GET /queues``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from servcore.job_reads import QueueInfo


def queue_tally_sql(now: str, jobs: str, *, active_only: bool = False) -> str:
    """Counts by queue: available, scheduled, running, done, failed, cancelled,
    and the earliest run_at of the available; ``now`` is the placeholder.
    ``active_only`` reads waiting and running jobs only (by the status index)."""
    due = f"status = 'queued' OR (status = 'scheduled' AND run_at <= {now})"
    where = "WHERE status IN ('queued', 'scheduled', 'running')" if active_only else ""
    return f"""
        SELECT queue,
               sum(CASE WHEN {due} THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'scheduled' AND run_at > {now} THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END),
               min(CASE WHEN {due} THEN run_at END)
        FROM {jobs} {where} GROUP BY queue
    """


def queue_infos(
    tallies: Sequence[Any],
    paused: Mapping[str, Any],
    to_time: Callable[[Any], datetime | None] = lambda value: value,
) -> list[QueueInfo]:
    """Merge tally rows (as :func:`queue_tally_sql` returns them) with the
    pause records: every queue that has either, by name."""
    counted = {row[0]: row for row in tallies}
    infos = []
    for name in sorted(set(counted) | set(paused)):
        row = counted.get(name)
        infos.append(
            QueueInfo(
                name=name,
                paused=bool(paused.get(name, False)),
                available=row[1] if row else 0,
                scheduled=row[2] if row else 0,
                running=row[3] if row else 0,
                done=row[4] if row else 0,
                failed=row[5] if row else 0,
                cancelled=row[6] if row else 0,
                oldest_available_at=to_time(row[7]) if row else None,
            )
        )
    return infos
