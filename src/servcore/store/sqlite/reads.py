"""The SQLite store's read queries: plain functions of a (reader) connection."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from servcore.job_reads import JobCounts, JobPage, JobQuery, NodeInfo, QueueInfo, StatusFilter
from servcore.jobs import Job
from servcore.store.queue_sql import queue_infos, queue_tally_sql
from servcore.store.sqlite.rows import COLUMNS, from_micros, row_to_job, to_micros

_decode_queues = msgspec.json.Decoder(list[str]).decode

_STATUS_WHERE = {
    "queued": "status IN ('queued', 'scheduled')",
    "running": "status = 'running'",
    "done": "status = 'done'",
    "failed": "status = 'failed'",
    "cancelled": "status = 'cancelled'",
    StatusFilter.SCHEDULED: "status = 'scheduled' AND run_at > :now",
    StatusFilter.AVAILABLE: "(status = 'queued' OR (status = 'scheduled' AND run_at <= :now))",
}


def select_job(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


def _where(query: JobQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The WHERE clause of what ``query`` matches (offset and limit aside), its values."""
    clauses = []
    values: dict[str, Any] = {"now": to_micros(now)}
    if query.status is not None:
        clauses.append(_STATUS_WHERE[query.status])
    if query.queue is not None:
        clauses.append("queue = :queue")
        values["queue"] = query.queue
    if query.task is not None:
        clauses.append("task = :task")
        values["task"] = query.task
    if query.search:
        clauses.append("(id = :search_id OR instr(lower(payload), :search) > 0)")
        values["search"] = query.search_text
        values["search_id"] = query.search_id
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), values


def select_page(conn: sqlite3.Connection, query: JobQuery, now: datetime) -> JobPage:
    """Newest first, with the total of all matches, from one snapshot."""
    where, values = _where(query, now)
    values.update(limit=query.limit, offset=query.offset)
    conn.execute("BEGIN")
    try:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT :limit OFFSET :offset",
            values,
        ).fetchall()
        (total,) = conn.execute(f"SELECT count(*) FROM jobs {where}", values).fetchone()
    finally:
        conn.execute("COMMIT")
    return JobPage([row_to_job(row) for row in rows], total)


def select_matching_ids(conn: sqlite3.Connection, query: JobQuery, now: datetime) -> list[int]:
    where, values = _where(query, now)
    return [
        job_id for (job_id,) in conn.execute(f"SELECT id FROM jobs {where} ORDER BY id", values)
    ]


def count_by_status(conn: sqlite3.Connection, now: datetime) -> JobCounts:
    conn.execute("BEGIN")
    try:
        by_status = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
        (scheduled,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE status = 'scheduled' AND run_at > ?",
            (to_micros(now),),
        ).fetchone()
    finally:
        conn.execute("COMMIT")
    return JobCounts.from_statuses(by_status, scheduled)


def earliest_run_at(conn: sqlite3.Connection, queue: str) -> int | None:
    """The smallest run_at (µs) of the queue's waiting jobs, by two index-backed minimums."""
    runs = [
        conn.execute(
            f"SELECT min(run_at) FROM jobs WHERE status = '{status}' AND queue = ?", (queue,)
        ).fetchone()[0]
        for status in ("queued", "scheduled")
    ]
    known = [run for run in runs if run is not None]
    return min(known) if known else None


def select_nodes(conn: sqlite3.Connection, alive_since_us: int) -> list[NodeInfo]:
    rows = conn.execute(
        "SELECT node, started_at, heartbeat_at, queues, leader FROM servcore_nodes "
        "WHERE heartbeat_at >= ? ORDER BY node",
        (alive_since_us,),
    ).fetchall()
    return [
        NodeInfo(
            node=node,
            started_at=_time(started),
            heartbeat_at=_time(heartbeat),
            queues=tuple(_decode_queues(queues)),
            leader=bool(leader),
        )
        for node, started, heartbeat, queues, leader in rows
    ]


def _time(micros: int) -> datetime:
    moment = from_micros(micros)
    assert moment is not None
    return moment


_QUEUES = queue_tally_sql("?1", "jobs")
_ACTIVE_QUEUES = queue_tally_sql("?1", "jobs", active_only=True)


def select_queues(
    conn: sqlite3.Connection, now_us: int, active_only: bool = False
) -> list[QueueInfo]:
    conn.execute("BEGIN")
    try:
        tallies = conn.execute(_ACTIVE_QUEUES if active_only else _QUEUES, (now_us,)).fetchall()
        paused = dict(conn.execute("SELECT name, paused FROM servcore_queues"))
    finally:
        conn.execute("COMMIT")
    return queue_infos(tallies, paused, from_micros)
