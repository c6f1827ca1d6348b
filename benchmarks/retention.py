"""Retention that keeps up: a steady 1,000 jobs/s with a short retention (issue 13).

One service in this process runs the workers (concurrency 64, no-op handler)
and the leader's pruner with ``retention`` R (default 20 s) and
``prune_interval`` P (default 5 s); a producer enqueues a steady rate (default
1,000 jobs/s, in batches every 50 ms) for D seconds (default 90). Every
second a sampler reads, on its own connection: the rows in the jobs table, the
finished ones, and on PostgreSQL the dead tuples and the table's size; every
pruning pass is timed (``prune_finished`` wrapped). A steady state is one where
the rows stay under rate x (R + P) plus the live work, in the second half as
in the first, and the table does not grow.

    .venv/bin/python benchmarks/retention.py                      # sqlite + postgres
    .venv/bin/python benchmarks/retention.py --stores postgres --seconds 180
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from _common import PG_DSN, median, pg_drop_schema, pg_new_schema, pg_url, print_machine, run_async

from servcore import Job, Service, ServiceConfig


class Sampler:
    """Reads the table's size once a second, on a connection of its own."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target  # a file path (SQLite) or a schema (PostgreSQL)
        self.samples: list[dict[str, float]] = []

    async def sample(self) -> None:
        if self.kind == "sqlite":
            self.samples.append(await asyncio.to_thread(self._sqlite))
        else:
            self.samples.append(await self._postgres())

    def _sqlite(self) -> dict[str, float]:
        conn = sqlite3.connect(self.target)
        try:
            rows, finished = conn.execute(
                "SELECT count(*), sum(status IN ('done', 'failed', 'cancelled')) FROM jobs"
            ).fetchone()
            pages, size = conn.execute("PRAGMA page_count").fetchone()[0], Path(self.target)
            wal = Path(f"{self.target}-wal")
            return {
                "rows": rows,
                "finished": finished or 0,
                "file_mib": (size.stat().st_size + (wal.stat().st_size if wal.exists() else 0))
                / 2**20,
                "pages": pages,
            }
        finally:
            conn.close()

    async def _postgres(self) -> dict[str, float]:
        conn = await asyncpg.connect(PG_DSN)
        try:
            table = f'"{self.target}".servcore_jobs'
            row = await conn.fetchrow(
                f"SELECT count(*) AS rows, count(*) FILTER (WHERE status IN "
                f"('done', 'failed', 'cancelled')) AS finished, "
                f"pg_total_relation_size('{table}') AS bytes FROM {table}"
            )
            dead = await conn.fetchval(
                "SELECT n_dead_tup FROM pg_stat_user_tables "
                "WHERE schemaname = $1 AND relname = 'servcore_jobs'",
                self.target,
            )
            return {
                "rows": row["rows"],
                "finished": row["finished"],
                "file_mib": row["bytes"] / 2**20,
                "dead": dead or 0,
            }
        finally:
            await conn.close()


async def one_run(kind: str, rate: int, seconds: float, retention: float, interval: float) -> None:
    schema = pg_new_schema()
    directory = tempfile.TemporaryDirectory(prefix="servcore-retention-")
    path = Path(directory.name) / "retention.db"
    url = f"sqlite:///{path}" if kind == "sqlite" else pg_url(schema)
    service = Service(
        config=ServiceConfig(
            url,
            node="bench-retention",
            concurrency=64,
            retention=retention,
            prune_interval=interval,
        )
    )

    @service.task("noop")
    async def noop(job: Job) -> None:
        return None

    await service.start()
    passes: list[tuple[float, int]] = []
    store = service.node.pruner._store  # what the leader's pruner calls
    prune = store.prune_finished

    async def timed_prune(before: datetime, **fence: Any) -> int:
        started = time.perf_counter()
        pruned = await prune(before, **fence)
        passes.append((time.perf_counter() - started, pruned))
        return pruned

    store.prune_finished = timed_prune  # type: ignore[method-assign]
    sampler = Sampler(kind, str(path) if kind == "sqlite" else schema)
    enqueued = 0
    started = time.monotonic()
    try:
        next_sample = started + 1
        batch = max(1, rate // 20)
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(rate * elapsed) - enqueued
            if due > 0:
                size = min(due, batch * 4)
                await service.enqueue_many(
                    [service.build_job({"task": "noop", "n": enqueued + i}) for i in range(size)]
                )
                enqueued += size
            if time.monotonic() >= next_sample:
                await sampler.sample()
                next_sample += 1
            await asyncio.sleep(0.05)
    finally:
        await service.stop(grace=5)
        if kind == "postgres":
            await pg_drop_schema(schema)
        directory.cleanup()
    report(kind, rate, seconds, retention, interval, enqueued, sampler.samples, passes)


def report(
    kind: str,
    rate: int,
    seconds: float,
    retention: float,
    interval: float,
    enqueued: int,
    samples: list[dict[str, float]],
    passes: list[tuple[float, int]],
) -> None:
    half = len(samples) // 2
    steady = samples[half:]
    warm = [s for s in samples[:half] if s["rows"] > 0]
    bound = rate * (retention + interval)
    print(
        f"{kind}: {enqueued:,} jobs in {seconds:.0f} s ({enqueued / seconds:,.0f}/s offered), "
        f"retention {retention:.0f} s, prune every {interval:.0f} s (bound ~{bound:,.0f} rows)"
    )

    def line(name: str, values: list[float], unit: str = "") -> str:
        if not values:
            return f"  {name}: -"
        return (
            f"  {name}: median {median(values):,.1f}{unit}, max {max(values):,.1f}{unit}, "
            f"last {values[-1]:,.1f}{unit}"
        )

    print(line("rows (second half)", [s["rows"] for s in steady]))
    print(line("rows (first half, once filling)", [s["rows"] for s in warm]))
    print(line("size MiB (second half)", [s["file_mib"] for s in steady]))
    if kind == "postgres":
        print(line("dead tuples (second half)", [s["dead"] for s in steady]))
    durations = [d * 1000 for d, n in passes if n]
    pruned = [float(n) for _, n in passes if n]
    print(line("prune pass ms", durations))
    print(line("rows pruned per pass", pruned))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--retention", type=float, default=20)
    parser.add_argument("--prune-interval", type=float, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    for kind in args.stores.split(","):
        run_async(
            lambda kind=kind: one_run(
                kind, args.rate, args.seconds, args.retention, args.prune_interval
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
