"""Reads and the hot path against a store holding N finished jobs (issue 13).

For each store (SQLite file, synchronous=FULL; PostgreSQL in a fresh schema)
and each size N, the jobs table is topped up to N finished jobs by bulk SQL
(96 % done, 3 % failed, 1 % cancelled; 4 queues, 4 tasks; finished over the
last 3 days) plus 1,000 active jobs (queued on other queues, scheduled a day
ahead), then a service without workers answers, in process through its ASGI
app (httpx + ASGITransport, no sockets): GET /queues, GET /stats,
GET /jobs?status=done&page=100, GET /jobs, GET /jobs/{id} and POST /jobs,
20 timed requests each after one untimed; and the store's claim -> complete
path (``claim_jobs`` + ``complete_jobs``, 100 new jobs a batch, 10 batches).
Sizes share one store per kind, filled in ascending order.

    .venv/bin/python benchmarks/history.py
    .venv/bin/python benchmarks/history.py --stores sqlite --sizes 0,5000000,10000000
    .venv/bin/python benchmarks/history.py --json benchmarks/results/history.json
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _common import (
    PG_DSN,
    emit_json,
    machine,
    median,
    percentile,
    pg_drop_schema,
    pg_new_schema,
    pg_url,
    print_machine,
    run_async,
)

from servcore import Service, ServiceConfig, create_app
from servcore.store.base import ClaimParams, Completion

REQUESTS = 20
CLAIM_BATCHES = 10
CLAIM_BATCH = 100
CLAIM_QUEUE = "default"
FILL_CHUNK = 1_000_000
ACTIVE = 1_000
SPREAD_S = 3 * 24 * 3600
HTTP_OPS = (
    "queues",
    "stats",
    "jobs_done_p100",
    "jobs_failed_after",
    "jobs_queue",
    "jobs_task",
    "jobs",
    "job_by_id",
    "post_job",
)
OPS = (*HTTP_OPS, "claim_complete")

# One history row i (1-based, ``g`` in SQL): status, queue, task, timestamps.
# Shared by both stores' INSERT … SELECT.
_STATUS = "CASE WHEN g % 100 < 3 THEN 'failed' WHEN g % 100 = 3 THEN 'cancelled' ELSE 'done' END"
_QUEUE = (
    "CASE g % 4 WHEN 0 THEN 'default' WHEN 1 THEN 'emails' WHEN 2 THEN 'reports' "
    "ELSE 'webhooks' END"
)
_TASK = (
    "CASE (g / 4) % 4 WHEN 0 THEN 'send_email' WHEN 1 THEN 'resize' WHEN 2 THEN 'sync' "
    "ELSE 'report' END"
)
_AGO_S = f"((g * 7919) % {SPREAD_S})"


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    samples_ms: list[float] = field(repr=False)


@dataclass
class Row:
    size: int
    fill_s: float
    jobs_in_table: int
    timings: dict[str, Timing]


# -- filling ----------------------------------------------------------------


def sqlite_history_sql(first: int, last: int) -> str:
    finished = f"(CAST(strftime('%s','now') AS INTEGER) - {_AGO_S}) * 1000000"
    return f"""
    WITH RECURSIVE s(g) AS (SELECT {first} UNION ALL SELECT g + 1 FROM s WHERE g < {last})
    INSERT INTO jobs (queue, task, payload, status, priority, attempt, max_attempts,
                      run_at, inserted_at, started_at, finished_at, result, errors)
    SELECT {_QUEUE}, {_TASK}, '{{"n":' || g || ',"to":"user@example.com"}}', {_STATUS},
           0, CASE WHEN g % 100 < 3 THEN 3 ELSE 1 END, 3,
           {finished} - 2000000, {finished} - 2000000, {finished} - 50000, {finished},
           CASE WHEN g % 100 >= 4 THEN '{{"ok":true}}' ELSE 'null' END, '[]'
    FROM s
    """


def sqlite_active_sql() -> str:
    now = "CAST(strftime('%s','now') AS INTEGER) * 1000000"
    return f"""
    WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {ACTIVE})
    INSERT INTO jobs (queue, task, payload, status, priority, attempt, max_attempts,
                      run_at, inserted_at, errors)
    SELECT CASE g % 3 WHEN 0 THEN 'emails' WHEN 1 THEN 'reports' ELSE 'webhooks' END,
           'send_email', '{{"n":' || g || '}}',
           CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'scheduled' END, 0, 0, 3,
           CASE WHEN g % 2 = 0 THEN {now} ELSE {now} + 86400000000 END, {now}, '[]'
    FROM s
    """


def pg_history_sql(table: str, first: int, last: int) -> str:
    finished = f"(now() - make_interval(secs => {_AGO_S}))"
    return f"""
    INSERT INTO {table} (queue, task, payload, status, priority, attempt, max_attempts,
                         run_at, inserted_at, started_at, finished_at, result, errors)
    SELECT {_QUEUE}, {_TASK}, json_build_object('n', g, 'to', 'user@example.com'), {_STATUS},
           0, CASE WHEN g % 100 < 3 THEN 3 ELSE 1 END, 3,
           {finished} - interval '2 s', {finished} - interval '2 s',
           {finished} - interval '50 ms', {finished},
           CASE WHEN g % 100 >= 4 THEN '{{"ok":true}}'::json ELSE 'null'::json END, '[]'
    FROM generate_series({first}::bigint, {last}::bigint) AS g
    """


def pg_active_sql(table: str) -> str:
    return f"""
    INSERT INTO {table} (queue, task, payload, status, priority, attempt, max_attempts,
                         run_at, inserted_at, errors)
    SELECT CASE g % 3 WHEN 0 THEN 'emails' WHEN 1 THEN 'reports' ELSE 'webhooks' END,
           'send_email', json_build_object('n', g),
           CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'scheduled' END, 0, 0, 3,
           CASE WHEN g % 2 = 0 THEN now() ELSE now() + interval '1 day' END, now(), '[]'
    FROM generate_series(1, {ACTIVE}) AS g
    """


def chunks(first: int, last: int) -> list[tuple[int, int]]:
    """[first, last] in inclusive pieces of at most FILL_CHUNK rows."""
    return [(lo, min(lo + FILL_CHUNK - 1, last)) for lo in range(first, last + 1, FILL_CHUNK)]


class Target:
    """One store under test: where it lives, how to fill it, how to clean it up."""

    kind = ""

    def url(self) -> str:
        raise NotImplementedError

    async def add_active(self) -> None:
        raise NotImplementedError

    async def add_history(self, first: int, last: int) -> None:
        raise NotImplementedError

    async def count(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteTarget(Target):
    kind = "sqlite"

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="servcore-history-")
        self.path = Path(self._dir.name) / "history.db"

    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _run(self, statements: list[str]) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for statement in statements:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(statement)
                conn.execute("COMMIT")
        finally:
            conn.close()

    async def add_active(self) -> None:
        await asyncio.to_thread(self._run, [sqlite_active_sql()])

    async def add_history(self, first: int, last: int) -> None:
        sql = [sqlite_history_sql(lo, hi) for lo, hi in chunks(first, last)]
        await asyncio.to_thread(self._run, sql)

    async def count(self) -> int:
        conn = sqlite3.connect(self.path)
        try:
            value: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            return value
        finally:
            conn.close()

    async def close(self) -> None:
        self._dir.cleanup()


class PostgresTarget(Target):
    kind = "postgres"

    def __init__(self) -> None:
        self.schema = pg_new_schema()
        self.table = f'"{self.schema}".servcore_jobs'

    def url(self) -> str:
        return pg_url(self.schema)

    async def _run(self, statements: list[str]) -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=10)
        try:
            # Bulk rows skip the counting triggers (a row trigger per finished
            # row would fire ten million times); the counts are redone once.
            await conn.execute("SET session_replication_role = replica")
            for statement in statements:
                await conn.execute(statement, timeout=3600)
            await conn.execute(f"ANALYZE {self.table}", timeout=3600)
            await conn.execute(self._recount(), timeout=3600)
        finally:
            await conn.close()

    def _recount(self) -> str:
        counts = f'"{self.schema}".servcore_counts'
        return f"""
            TRUNCATE {counts}, "{self.schema}".servcore_count_changes;
            INSERT INTO {counts} (queue, status, jobs)
            SELECT queue, status, count(*) FROM {self.table}
            WHERE status IN ('done', 'failed', 'cancelled') GROUP BY queue, status
        """

    async def add_active(self) -> None:
        await self._run([pg_active_sql(self.table)])

    async def add_history(self, first: int, last: int) -> None:
        await self._run([pg_history_sql(self.table, lo, hi) for lo, hi in chunks(first, last)])

    async def count(self) -> int:
        conn = await asyncpg.connect(PG_DSN, timeout=10)
        try:
            value: int = await conn.fetchval(f"SELECT count(*) FROM {self.table}")
            return value
        finally:
            await conn.close()

    async def close(self) -> None:
        await pg_drop_schema(self.schema)


def new_service(target: Target) -> Service:
    return Service(target.url(), config=ServiceConfig(node="bench-history"))


async def migrate(target: Target) -> None:
    """Let servcore create its schema, then add the active jobs."""
    service = new_service(target)
    await service.start(workers=False)
    await service.stop(grace=0)
    await target.add_active()


# -- timing -----------------------------------------------------------------


def timing(samples_s: list[float]) -> Timing:
    samples_ms = [s * 1000 for s in samples_s]
    return Timing(median(samples_ms), percentile(sorted(samples_ms), 0.9), samples_ms)


async def time_calls(call: Callable[[], Awaitable[None]], count: int) -> Timing:
    """One untimed call, then ``count`` timed ones."""
    await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return timing(samples)


def http_call(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None
) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        response = await client.request(method, path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")

    return call


async def http_timings(service: Service, size: int) -> dict[str, Timing]:
    app = create_app(service, manage_service=False)
    transport = httpx.ASGITransport(app=app)
    job_id = max(1, size // 2)
    calls = {
        "queues": ("GET", "/queues", None),
        "stats": ("GET", "/stats", None),
        "jobs_done_p100": ("GET", "/jobs?status=done&page=100", None),
        "jobs_failed_after": ("GET", f"/jobs?status=failed&after_id={job_id}", None),
        "jobs_queue": ("GET", "/jobs?queue=emails", None),
        "jobs_task": ("GET", "/jobs?task=resize", None),
        "jobs": ("GET", "/jobs", None),
        "job_by_id": ("GET", f"/jobs/{job_id}", None),
        "post_job": ("POST", "/jobs", {"payload": {"to": "a@example.com"}, "queue": "intake"}),
    }
    results = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for name, (method, path, body) in calls.items():
            results[name] = await time_calls(http_call(client, method, path, body), REQUESTS)
    return results


async def claim_complete_timing(service: Service) -> Timing:
    """Enqueue 100 jobs (untimed), then time claim_jobs + complete_jobs on them."""
    store = service.store
    await store.register_node("bench-history")
    samples = []
    for _ in range(CLAIM_BATCHES + 1):
        await service.enqueue_many(
            [service.build_job({"n": i}, queue=CLAIM_QUEUE) for i in range(CLAIM_BATCH)]
        )
        now = service.clock.now()
        started = time.perf_counter()
        jobs = await store.claim_jobs(
            ClaimParams(CLAIM_QUEUE, CLAIM_BATCH, "bench-history", now, now + timedelta(seconds=60))
        )
        stale = await store.complete_jobs(
            [Completion(job.id, job.lease_token, service.clock.now(), None) for job in jobs]
        )
        samples.append(time.perf_counter() - started)
        if len(jobs) != CLAIM_BATCH or stale:
            raise RuntimeError(f"claimed {len(jobs)} of {CLAIM_BATCH}, {len(stale)} stale")
    return timing(samples[1:])


async def measure(target: Target, size: int) -> dict[str, Timing]:
    service = new_service(target)
    await service.start(workers=False)
    try:
        timings = {"claim_complete": await claim_complete_timing(service)}
        timings.update(await http_timings(service, size))
        return timings
    finally:
        await service.stop(grace=0)


# -- driving ----------------------------------------------------------------


async def run_store(target: Target, sizes: list[int]) -> list[Row]:
    rows = []
    filled = 0
    try:
        await migrate(target)
        for size in sizes:
            started = time.perf_counter()
            if size > filled:
                await target.add_history(filled + 1, size)
                filled = size
            fill_s = time.perf_counter() - started
            in_table = await target.count()
            print(
                f"  {target.kind} {size:>10,}: filled in {fill_s:6.1f} s "
                f"({in_table:,} rows); measuring",
                flush=True,
            )
            rows.append(Row(size, fill_s, in_table, await measure(target, size)))
    finally:
        await target.close()
    return rows


def cell(row: Row, base: Row, op: str) -> str:
    value = row.timings[op]
    ratio = value.median_ms / base.timings[op].median_ms
    return f"{value.median_ms:.2f} / {value.p90_ms:.2f} (x{ratio:.1f})"


def print_table(kind: str, rows: list[Row]) -> None:
    print(f"\n{kind}: median / p90 ms (x median of the smallest size)")
    print("| finished jobs | " + " | ".join(OPS) + " |")
    print("|---:|" + "---|" * len(OPS))
    for row in rows:
        cells = " | ".join(cell(row, rows[0], op) for op in OPS)
        print(f"| {row.size:,} | {cells} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument(
        "--sizes", default="0,100000,1000000", help="finished jobs, comma-separated"
    )
    parser.add_argument("--json", help="write the raw numbers to this file")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    kinds = args.stores.split(",")
    if any(k not in ("sqlite", "postgres") for k in kinds) or sizes[0] < 0:
        parser.error("--stores takes sqlite,postgres; --sizes non-negative integers")
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    print(f"# sizes {sizes}; {REQUESTS} requests per endpoint; {CLAIM_BATCHES} claim batches")
    results: dict[str, list[Row]] = {}
    for kind in kinds:
        target: Target = SqliteTarget() if kind == "sqlite" else PostgresTarget()
        results[kind] = run_async(functools.partial(run_store, target, sizes))
    for kind, rows in results.items():
        print_table(kind, rows)
    emit_json(
        args.json,
        {
            "machine": machine(),
            "command": " ".join(sys.argv),
            "results": {kind: [asdict(row) for row in rows] for kind, rows in results.items()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
