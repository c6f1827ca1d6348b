"""The per-queue tally both SQL stores run for ``GET /queues``."""

from __future__ import annotations


def queue_tally_sql(now: str, jobs: str) -> str:
    """Counts by queue: available, scheduled, running, done, failed, cancelled,
    and the earliest run_at of the available; ``now`` is the placeholder."""
    due = f"status = 'queued' OR (status = 'scheduled' AND run_at <= {now})"
    return f"""
        SELECT queue,
               sum(CASE WHEN {due} THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'scheduled' AND run_at > {now} THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
               sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END),
               min(CASE WHEN {due} THEN run_at END)
        FROM {jobs} GROUP BY queue
    """
