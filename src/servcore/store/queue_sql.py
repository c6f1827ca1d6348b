"""The per-queue tally both SQL stores run for ``GET /queues``, ``/stats`` and the gauges.

Its cost does not grow with history. Waiting and running jobs are counted
through the partial indexes that hold only them (``status = 'queued'``,
``'scheduled'``, ``'running'``): a count of the live work, however many
finished jobs the table keeps. Finished jobs are never counted row by row:
triggers on the jobs table keep their number per (queue, status) in a small
table as rows enter and leave a finished state (complete, fail, cancel,
retry, rescue, prune, result expiry — any statement, present or future), in
the same transaction. Both parts are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from servcore.job_reads import JobCounts, QueueInfo

FINISHED_STATUSES = ("done", "failed", "cancelled")
# Spelled exactly so in the finished-only indexes' WHERE and in the queries
# meant to use them: SQLite picks a partial index only for a query that
# repeats its condition.
FINISHED = "status IN ('done', 'failed', 'cancelled')"


def active_tally_sql(now: str, jobs: str) -> str:
    """(queue, stored status, jobs, of them due, earliest due run_at) for the
    waiting and running jobs; one arm per partial index. ``now`` is the
    placeholder for the current time."""
    return f"""
        SELECT queue, 'queued', count(*), count(*), min(run_at)
        FROM {jobs} WHERE status = 'queued' GROUP BY queue
        UNION ALL
        SELECT queue, 'scheduled', count(*),
               sum(CASE WHEN run_at <= {now} THEN 1 ELSE 0 END),
               min(CASE WHEN run_at <= {now} THEN run_at END)
        FROM {jobs} WHERE status = 'scheduled' GROUP BY queue
        UNION ALL
        SELECT queue, 'running', count(*), 0, NULL
        FROM {jobs} WHERE status = 'running' GROUP BY queue
    """


def queue_infos(
    active: Iterable[Any],
    finished: Iterable[Any],
    paused: Mapping[str, Any],
    to_time: Callable[[Any], datetime | None] = lambda value: value,
) -> list[QueueInfo]:
    """Merge the active tally (rows of :func:`active_tally_sql`), the finished
    counts ((queue, status, jobs) rows) and the pause records: every queue
    that has any of them, by name."""
    tallies: dict[str, dict[str, Any]] = {name: {} for name in paused}
    for queue, status, count, due, earliest in active:
        tally = tallies.setdefault(queue, {})
        if status == "running":
            tally["running"] = count
            continue
        tally["available"] = tally.get("available", 0) + due
        if status == "scheduled":
            tally["scheduled"] = count - due
        first = to_time(earliest) if earliest is not None else None
        if first is not None:
            known = tally.get("oldest")
            tally["oldest"] = first if known is None else min(known, first)
    for queue, status, count in finished:
        if count:
            tallies.setdefault(queue, {})[status] = count
    return tallied_queues(tallies, paused)


def tallied_queues(
    tallies: Mapping[str, Mapping[str, Any]], paused: Mapping[str, Any]
) -> list[QueueInfo]:
    """Queues by name from tallies of kind -> jobs (``available``,
    ``scheduled``, ``running``, the finished statuses; ``oldest``: the
    earliest due run_at), every store's ``list_queues`` answer."""
    return [
        QueueInfo(
            name=name,
            paused=bool(paused.get(name, False)),
            available=tally.get("available", 0),
            scheduled=tally.get("scheduled", 0),
            running=tally.get("running", 0),
            done=tally.get("done", 0),
            failed=tally.get("failed", 0),
            cancelled=tally.get("cancelled", 0),
            oldest_available_at=tally.get("oldest"),
        )
        for name, tally in sorted(tallies.items())
    ]


def counts_of(infos: Iterable[QueueInfo]) -> JobCounts:
    """The counts by status of every queue together."""
    totals = dict.fromkeys(("queued", "scheduled", "running", *FINISHED_STATUSES), 0)
    for info in infos:
        totals["queued"] += info.available + info.scheduled
        totals["scheduled"] += info.scheduled
        totals["running"] += info.running
        totals["done"] += info.done
        totals["failed"] += info.failed
        totals["cancelled"] += info.cancelled
    return JobCounts(**totals)
