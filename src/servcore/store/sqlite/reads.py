"""The SQLite store's read queries: plain functions of a (reader) connection."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from servcore.job_reads import JobCounts, JobPage, JobQuery, NodeInfo, QueueInfo
from servcore.jobs import Job
from servcore.store.listing_sql import Binder, Listing
from servcore.store.queue_sql import active_tally_sql, counts_of, queue_infos
from servcore.store.sqlite.rows import COLUMNS, from_micros, row_to_job, to_micros

_decode_queues = msgspec.json.Decoder(list[str]).decode


def select_job(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


def _search(id_placeholder: str, text_placeholder: str) -> str:
    return f"(id = {id_placeholder} OR instr(lower(payload), {text_placeholder}) > 0)"


def _index_hint(index: str | None) -> str:
    if index == "primary":
        return ""
    return " NOT INDEXED" if index is None else f" INDEXED BY jobs_{index}"


def _listing(query: JobQuery, now_us: int) -> Listing:
    return Listing(
        query,
        now_us,
        jobs="jobs",
        columns=COLUMNS,
        binder=Binder("?"),
        search_clause=_search,
        index_hint=_index_hint,
    )


def select_page(conn: sqlite3.Connection, query: JobQuery, now: datetime) -> JobPage:
    """Newest first, with the total of all matches, from one snapshot (see
    ``store.listing_sql``)."""
    now_us = to_micros(now)
    listing = _listing(query, now_us)
    conn.execute("BEGIN")
    try:
        rows = conn.execute(listing.page(), listing.values).fetchall()
        steps = listing.total(len(rows))
        try:
            ask = next(steps)
            while True:
                kind, sql, values = ask
                if kind == "scope":
                    answer: Any = listing.scope_total(_tallies(conn, now_us))
                else:
                    answer = conn.execute(sql, values).fetchone()
                ask = steps.send(answer)
        except StopIteration as done:
            total, exact = done.value
    finally:
        conn.execute("COMMIT")
    return JobPage([row_to_job(row) for row in rows], total, exact)


def select_matching_ids(conn: sqlite3.Connection, query: JobQuery, now: datetime) -> list[int]:
    listing = _listing(query, to_micros(now))
    return [job_id for (job_id,) in conn.execute(listing.ids(), listing.count_values)]


def count_by_status(conn: sqlite3.Connection, now: datetime) -> JobCounts:
    conn.execute("BEGIN")
    try:
        return counts_of(_tallies(conn, to_micros(now)))
    finally:
        conn.execute("COMMIT")


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


_ACTIVE = active_tally_sql("?1", "jobs")
_FINISHED = "SELECT queue, status, jobs FROM servcore_counts WHERE jobs <> 0"


def _tallies(conn: sqlite3.Connection, now_us: int, active_only: bool = False) -> list[QueueInfo]:
    active = conn.execute(_ACTIVE, (now_us,)).fetchall()
    finished = [] if active_only else conn.execute(_FINISHED).fetchall()
    paused = dict(conn.execute("SELECT name, paused FROM servcore_queues"))
    return queue_infos(active, finished, paused, from_micros)


def select_queues(
    conn: sqlite3.Connection, now_us: int, active_only: bool = False
) -> list[QueueInfo]:
    conn.execute("BEGIN")
    try:
        return _tallies(conn, now_us, active_only)
    finally:
        conn.execute("COMMIT")
