"""PostgreSQL across processes: throughput, enqueue→start latency, a killed worker.

Every run uses a fresh schema ``bench_<random>`` (``?schema=``) on the
loopback server in ``SERVCORE_BENCH_PG`` (default
``postgresql://root@127.0.0.1:5432/test``) and drops it afterwards. Workers
are real ``servcore worker pg_tasks:service`` processes (``benchmarks/pg_tasks.py``).

``--part workers``: enqueue ``--jobs`` no-op jobs from Python, then start two
worker processes (``--concurrency`` each) and time until all are ``done``
(count polled in PostgreSQL every 20 ms). Reported twice: from spawning the
processes (includes interpreter start-up) and from the first job's
``started_at`` to the last ``finished_at`` (processing only).

``--part latency``: one worker process (concurrency 64); this process enqueues
one job every ``--interval`` ms with ``service.enqueue`` and notes
``time.time()`` just before each call; the handler returns ``time.time()``
taken on entry as its result. Latency = handler start - enqueue call, read
back from the store afterwards (one host, one wall clock). Also shown:
``started_at - inserted_at`` as stamped by the two processes.

``--part crash``: two workers (``--lease 5``, concurrency 64) run jobs that
sleep 50 ms; when ``--kill-after`` jobs are done (plus a random 0-1 s) one
worker gets SIGKILL.
Measured: kill → every job the dead worker held (``running`` under its node
name just after the kill) is ``done`` again; kill → all done; how many jobs
ran twice (each execution appends the id to a file) and how many never ran.

    .venv/bin/python benchmarks/postgres.py                    # all parts, 3 runs each
    .venv/bin/python benchmarks/postgres.py --part latency --runs 5

Targets: two-process throughput >= 10,000 jobs/s (as for one process);
latency p50 <= 5 ms, p99 <= 20 ms; a dead worker's jobs done again within
lease + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from _common import (
    PG_DSN,
    emit_json,
    median,
    percentile,
    pg_drop_schema,
    pg_new_schema,
    pg_url,
    print_machine,
    run_pg,
    spawn_worker,
    stop_process,
)

from servcore import Service

TARGET_JOBS_PER_S = 10_000.0
TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0
POLL_S = 0.02


async def wait_done(
    conn: asyncpg.Connection, table: str, count: int, deadline_s: float, procs: list[Any]
) -> int:
    """Poll until ``count`` jobs are done; the done count at the end."""
    end = time.monotonic() + deadline_s
    done = 0
    while time.monotonic() < end:
        done = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE status = 'done'")
        if done >= count:
            return int(done)
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited early with code {proc.returncode}")
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"only {done} of {count} jobs done after {deadline_s:.0f} s")


async def open_service(url: str) -> Service:
    service = Service(url)
    await service.start(workers=False)  # creates and migrates the schema
    return service


async def enqueue_bulk(service: Service, task: str, jobs: int, batch: int = 1_000) -> float:
    t0 = time.perf_counter()
    for first in range(0, jobs, batch):
        count = min(batch, jobs - first)
        await service.enqueue_many(
            [service.build_job({"task": task, "n": first + i}) for i in range(count)]
        )
    return time.perf_counter() - t0


# -- part 1: two worker processes ------------------------------------------


async def workers_run(jobs: int, concurrency: int, processes: int, deadline_s: float) -> dict:
    schema = pg_new_schema()
    url = pg_url(schema)
    table = f'"{schema}".servcore_jobs'
    procs: list[subprocess.Popen[bytes]] = []
    try:
        service = await open_service(url)
        try:
            enqueue_s = await enqueue_bulk(service, "noop", jobs)
        finally:
            await service.stop()
        conn = await asyncpg.connect(PG_DSN)
        try:
            t0 = time.perf_counter()
            procs = [spawn_worker(url, f"bench-w{n}", concurrency) for n in range(1, processes + 1)]
            await wait_done(conn, table, jobs, deadline_s, procs)
            wall_s = time.perf_counter() - t0
            row = await conn.fetchrow(
                f"SELECT extract(epoch FROM max(finished_at) - min(started_at)) AS span "
                f"FROM {table}"
            )
            span_s = float(row["span"])
        finally:
            await conn.close()
        return {
            "jobs": jobs,
            "processes": processes,
            "concurrency": concurrency,
            "enqueue_per_s": jobs / enqueue_s,
            "wall_s": wall_s,
            "wall_jobs_per_s": jobs / wall_s,
            "processing_s": span_s,
            "jobs_per_s": jobs / span_s,
        }
    finally:
        for proc in procs:
            stop_process(proc)
        await pg_drop_schema(schema)


# -- part 2: enqueue→start latency across processes ------------------------


async def latency_run(jobs: int, interval_s: float, concurrency: int, deadline_s: float) -> dict:
    schema = pg_new_schema()
    url = pg_url(schema)
    table = f'"{schema}".servcore_jobs'
    proc: subprocess.Popen[bytes] | None = None
    try:
        service = await open_service(url)
        conn = await asyncpg.connect(PG_DSN)
        try:
            proc = spawn_worker(url, "bench-lat", concurrency)
            await service.enqueue("stamp", {"i": -1})  # warm-up: the worker is up when it ran
            await wait_done(conn, table, 1, 30.0, [proc])
            await asyncio.sleep(0.5)
            sent: dict[int, float] = {}
            call_ms: list[float] = []
            origin = time.perf_counter()
            for i in range(jobs):
                pause = origin + i * interval_s - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                at = time.time()
                c0 = time.perf_counter()
                job = await service.enqueue("stamp", {"i": i})
                call_ms.append((time.perf_counter() - c0) * 1000)
                sent[job.id] = at
            await wait_done(conn, table, jobs + 1, deadline_s, [proc])
            rows = await conn.fetch(
                f"SELECT id, result::text AS result, "
                f"extract(epoch FROM started_at - inserted_at) AS db_s "
                f"FROM {table} WHERE id = ANY($1::bigint[])",
                list(sent),
            )
        finally:
            await conn.close()
            await service.stop()
        handler_ms = sorted((json.loads(r["result"])["t"] - sent[r["id"]]) * 1000 for r in rows)
        stamped_ms = sorted(float(r["db_s"]) * 1000 for r in rows)
        calls = sorted(call_ms)
        return {
            "n": len(rows),
            "p50_ms": percentile(handler_ms, 0.50),
            "p90_ms": percentile(handler_ms, 0.90),
            "p99_ms": percentile(handler_ms, 0.99),
            "max_ms": handler_ms[-1],
            "started_minus_inserted_p50_ms": percentile(stamped_ms, 0.50),
            "started_minus_inserted_p99_ms": percentile(stamped_ms, 0.99),
            "enqueue_call_p50_ms": percentile(calls, 0.50),
            "enqueue_call_p99_ms": percentile(calls, 0.99),
        }
    finally:
        if proc is not None:
            stop_process(proc)
        await pg_drop_schema(schema)


# -- part 3: SIGKILL one of two workers -------------------------------------


async def crash_run(
    jobs: int,
    kill_after: int,
    concurrency: int,
    lease: float,
    sleep_ms: float,
    deadline_s: float,
    jitter_s: float,
) -> dict:
    schema = pg_new_schema()
    url = pg_url(schema)
    table = f'"{schema}".servcore_jobs'
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        log_path = Path(tmp) / "runs.log"
        try:
            service = await open_service(url)
            try:
                await enqueue_bulk(service, "append", jobs)
            finally:
                await service.stop()
            conn = await asyncpg.connect(PG_DSN)
            try:
                extra = {
                    "SERVCORE_BENCH_LOG": str(log_path),
                    "SERVCORE_BENCH_SLEEP_MS": str(sleep_ms),
                }
                victim = spawn_worker(url, "bench-victim", concurrency, lease, **extra)
                survivor = spawn_worker(url, "bench-survivor", concurrency, lease, **extra)
                procs = [victim, survivor]
                await wait_done(conn, table, kill_after, deadline_s, procs)
                # A random moment, so the kill does not fall at the same phase of
                # the survivor's rescuer period (1 s) in every run.
                await asyncio.sleep(random.uniform(0.0, jitter_s))
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                killed_wall = time.time()
                victim.wait(5)
                # Let PostgreSQL finish (or roll back) a statement the victim had sent.
                await asyncio.sleep(0.1)
                held = await conn.fetch(
                    f"SELECT id, extract(epoch FROM locked_until) AS until FROM {table} "
                    "WHERE status = 'running' AND locked_by = 'bench-victim'"
                )
                held_ids = [r["id"] for r in held]
                lease_left_s = max((float(r["until"]) - killed_wall for r in held), default=0.0)
                end = time.monotonic() + deadline_s
                rescued_s = float("nan")
                while time.monotonic() < end:
                    left = await conn.fetchval(
                        f"SELECT count(*) FROM {table} WHERE id = ANY($1::bigint[]) "
                        "AND status <> 'done'",
                        held_ids,
                    )
                    if left == 0:
                        rescued_s = time.monotonic() - killed_at
                        break
                    if survivor.poll() is not None:
                        raise RuntimeError("the surviving worker exited")
                    await asyncio.sleep(POLL_S)
                else:
                    raise RuntimeError(f"the dead worker's jobs not done after {deadline_s} s")
                await wait_done(conn, table, jobs, deadline_s, [survivor])
                all_done_s = time.monotonic() - killed_at
                counts = dict(
                    await conn.fetch(f"SELECT status, count(*) FROM {table} GROUP BY status")
                )
            finally:
                await conn.close()
        finally:
            for proc in procs:
                stop_process(proc)
            await pg_drop_schema(schema)
        runs = collections.Counter(int(line) for line in log_path.read_text().split())
    twice = [job_id for job_id, n in runs.items() if n > 1]
    return {
        "jobs": jobs,
        "held_by_victim": len(held_ids),
        "victim_lease_left_s": lease_left_s,
        "kill_to_held_done_s": rescued_s,
        "kill_to_all_done_s": all_done_s,
        "ran_twice": len(twice),
        "ran_twice_not_held": len(set(twice) - set(held_ids)),
        "ran_more_than_twice": sum(1 for n in runs.values() if n > 2),
        "never_ran": jobs - len(runs),
        "statuses": counts,
    }


# -- main -------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="workers,latency,crash")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000, help="workers part")
    parser.add_argument("--processes", type=int, default=2, help="workers part")
    parser.add_argument("--concurrency", type=int, default=256, help="workers part, per process")
    parser.add_argument("--latency-jobs", type=int, default=2_000)
    parser.add_argument("--interval", type=float, default=2.0, help="ms between arrivals")
    parser.add_argument("--crash-jobs", type=int, default=15_000)
    parser.add_argument("--kill-after", type=int, default=2_000, help="jobs done before SIGKILL")
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--sleep-ms", type=float, default=50.0)
    parser.add_argument(
        "--kill-jitter", type=float, default=1.0, help="s, random extra wait before the kill"
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per wait, max")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    parts = args.part.split(",")
    if set(parts) - {"workers", "latency", "crash"}:
        parser.error("--part: workers, latency, crash")
    if not 1 <= args.runs <= 20 or not 1 <= args.jobs <= 1_000_000:
        parser.error("--runs must be 1..20 and --jobs 1..1,000,000")
    if not 1 <= args.processes <= 8 or not 1 <= args.latency_jobs <= 100_000:
        parser.error("--processes must be 1..8 and --latency-jobs 1..100,000")
    if not 0 < args.kill_after < args.crash_jobs <= 200_000 or args.interval <= 0:
        parser.error("need 0 < --kill-after < --crash-jobs <= 200,000 and --interval > 0")

    logging.basicConfig(level=logging.WARNING)
    print_machine()
    summary: dict[str, Any] = {}
    failed = False

    if "workers" in parts:
        print(
            f"# workers: {args.jobs} no-op jobs, {args.processes} `servcore worker` processes "
            f"x concurrency {args.concurrency}, {args.runs} runs",
            flush=True,
        )
        runs = []
        for _ in range(args.runs):
            r = run_pg(
                lambda: workers_run(args.jobs, args.concurrency, args.processes, args.deadline)
            )
            runs.append(r)
            print(
                f"  spawn→all done {r['wall_s']:6.3f} s = {r['wall_jobs_per_s']:8,.0f} jobs/s; "
                f"first start→last finish {r['processing_s']:6.3f} s = "
                f"{r['jobs_per_s']:8,.0f} jobs/s (enqueue {r['enqueue_per_s']:,.0f}/s)",
                flush=True,
            )
        rate = median([r["jobs_per_s"] for r in runs])
        wall = median([r["wall_jobs_per_s"] for r in runs])
        ok = rate >= TARGET_JOBS_PER_S
        failed |= not ok
        print(
            f"workers: median {rate:,.0f} jobs/s processing, {wall:,.0f} jobs/s incl. start-up "
            f"(target >= {TARGET_JOBS_PER_S:,.0f}: {'PASS' if ok else 'FAIL'})",
            flush=True,
        )
        summary["workers"] = {"median_jobs_per_s": rate, "median_wall_jobs_per_s": wall,
                              "pass": ok, "runs": runs}  # fmt: skip

    if "latency" in parts:
        print(
            f"# latency: {args.latency_jobs} jobs, one every {args.interval} ms, enqueued here, "
            f"run by one `servcore worker` (concurrency 64), {args.runs} runs",
            flush=True,
        )
        runs = []
        for _ in range(args.runs):
            r = run_pg(
                lambda: latency_run(args.latency_jobs, args.interval / 1000, 64, args.deadline)
            )
            runs.append(r)
            print(
                f"  p50 {r['p50_ms']:6.3f} ms  p90 {r['p90_ms']:6.3f} ms  "
                f"p99 {r['p99_ms']:6.3f} ms  max {r['max_ms']:7.3f} ms | started-inserted p50 "
                f"{r['started_minus_inserted_p50_ms']:.3f} p99 "
                f"{r['started_minus_inserted_p99_ms']:.3f} | enqueue call p50 "
                f"{r['enqueue_call_p50_ms']:.3f} p99 {r['enqueue_call_p99_ms']:.3f} ms",
                flush=True,
            )
        p50 = median([r["p50_ms"] for r in runs])
        p99 = median([r["p99_ms"] for r in runs])
        ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        failed |= not ok
        print(
            f"latency: median p50 {p50:.3f} ms, p99 {p99:.3f} ms (targets p50 <= "
            f"{TARGET_P50_MS}, p99 <= {TARGET_P99_MS}: {'PASS' if ok else 'FAIL'})",
            flush=True,
        )
        summary["latency"] = {"median_p50_ms": p50, "median_p99_ms": p99, "pass": ok,
                              "runs": runs}  # fmt: skip

    if "crash" in parts:
        print(
            f"# crash: {args.crash_jobs} jobs of {args.sleep_ms:g} ms, two workers "
            f"(concurrency 64, --lease {args.lease:g}); SIGKILL one after {args.kill_after} "
            f"done; {args.runs} runs",
            flush=True,
        )
        runs = []
        for _ in range(args.runs):
            r = run_pg(
                lambda: crash_run(
                    args.crash_jobs,
                    args.kill_after,
                    64,
                    args.lease,
                    args.sleep_ms,
                    args.deadline,
                    args.kill_jitter,
                )
            )
            runs.append(r)
            print(
                f"  held {r['held_by_victim']} (lease left {r['victim_lease_left_s']:.2f} s); "
                f"kill→held done {r['kill_to_held_done_s']:.3f} s; kill→all done "
                f"{r['kill_to_all_done_s']:.2f} s; ran twice {r['ran_twice']} "
                f"(not held: {r['ran_twice_not_held']}); never ran {r['never_ran']}; "
                f"{r['statuses']}",
                flush=True,
            )
        rescued = median([r["kill_to_held_done_s"] for r in runs])
        target = args.lease + 1.0
        ok = rescued <= target and all(r["never_ran"] == 0 for r in runs)
        failed |= not ok
        print(
            f"crash: median kill→held jobs done {rescued:.3f} s (target <= {target:g} s: "
            f"{'PASS' if ok else 'FAIL'}); ran twice median "
            f"{median([r['ran_twice'] for r in runs]):g}",
            flush=True,
        )
        summary["crash"] = {"median_kill_to_held_done_s": rescued, "target_s": target,
                            "pass": ok, "runs": runs}  # fmt: skip

    emit_json(args.json, {"benchmark": "postgres", "results": summary})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
