"""Enqueue→start latency for jobs that arrive one at a time.

In process (``--mode python``, the default): a started service with workers;
every ``--interval`` ms one job is submitted with ``service.enqueue`` and the
time just before the call is noted; the handler notes when it starts. The
latency is the difference, on one monotonic clock.

Over HTTP (``--mode http``): a real ``servcore serve`` process (default
handler); one client POSTs /jobs every ``--interval`` ms over a kept-alive
connection and notes the wall-clock time just before sending; afterwards the
job's ``started_at`` (set when a worker claims it) is read back. Same host,
same wall clock.

Across processes on one SQLite file (``--mode processes``): a real
``servcore worker pg_tasks:service`` (concurrency 64, default poll interval)
is started and warmed up with one job; then, while nothing is offered, its
CPU use is read from ``/proc/<pid>/stat`` over ``--idle`` seconds; then this
process (``Service.start(workers=False)``, as a web app would) offers
``--jobs`` jobs one every ``--interval`` ms with ``service.enqueue``, noting
``time.time()`` just before each call. The handler returns ``time.time()``
taken on entry; latency = that - the enqueue call, read back afterwards.

    .venv/bin/python benchmarks/latency.py                       # python, memory + sqlite
    .venv/bin/python benchmarks/latency.py --mode http --stores sqlite
    .venv/bin/python benchmarks/latency.py --mode processes --jobs 1000 --interval 5

Targets: p50 <= 2 ms, p99 <= 10 ms (in one process and over HTTP); across
processes p50 <= 5 ms, p99 <= 20 ms, and the idle worker under 1 % CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _common import (
    SERVCORE,
    cpu_seconds,
    emit_json,
    free_port,
    median,
    percentile,
    print_machine,
    run_async,
    spawn_worker,
    stop_process,
    wait_until_up,
)

from servcore import Service, ServiceConfig
from servcore.jobs import Job

TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0
# Across processes (as for PostgreSQL in postgres.py): the wake-up crosses a process.
TARGET_PROCESSES_P50_MS = 5.0
TARGET_PROCESSES_P99_MS = 20.0
TARGET_IDLE_CPU_PCT = 1.0


def store_url(kind: str, directory: Path, name: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{directory / name}"
    raise SystemExit(f"unknown store {kind!r}: use memory or sqlite")


def summarise(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 0.50),
        "p90_ms": percentile(ordered, 0.90),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else float("nan"),
    }


async def python_run(
    kind: str, jobs: int, interval_s: float, concurrency: int, deadline_s: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        url = store_url(kind, Path(tmp), "latency.db")
        service = Service(config=ServiceConfig(store=url, concurrency=concurrency))
        started: dict[int, float] = {}
        all_started = asyncio.Event()

        @service.task("mark")
        async def mark(job: Job) -> None:
            started[job.payload["i"]] = time.perf_counter()
            if len(started) >= jobs:
                all_started.set()

        submitted: dict[int, float] = {}
        await service.start()
        try:
            await asyncio.sleep(0.2)  # let the claim loop go idle first
            origin = time.perf_counter()
            for i in range(jobs):
                pause = origin + i * interval_s - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                submitted[i] = time.perf_counter()
                await service.enqueue("mark", {"i": i})
            await asyncio.wait_for(all_started.wait(), deadline_s)
        finally:
            await service.stop(grace=5)
    return summarise([(started[i] - submitted[i]) * 1000 for i in range(jobs)])


def _parse_z(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def http_run(kind: str, jobs: int, interval_s: float, deadline_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [
            str(SERVCORE),
            "serve",
            "--store",
            store_url(kind, Path(tmp), "latency-http.db"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVCORE_")}
        env.pop("PORT", None)
        proc = subprocess.Popen(command, env=env)
        try:
            wait_until_up(f"{base}/health", proc)
            sent: dict[int, float] = {}
            with httpx.Client(base_url=base, timeout=5.0) as client:
                client.get("/health")
                time.sleep(0.2)
                origin = time.perf_counter()
                for i in range(jobs):
                    pause = origin + i * interval_s - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    at = time.time()
                    response = client.post("/jobs", json={"payload": {"task": "mark", "i": i}})
                    response.raise_for_status()
                    sent[response.json()["job_id"]] = at
                begin = time.monotonic()
                started: dict[int, float] = {}
                while time.monotonic() - begin < deadline_s and len(started) < len(sent):
                    for job_id in sent:
                        if job_id in started:
                            continue
                        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
                        if job.get("started_at"):
                            started[job_id] = _parse_z(job["started_at"])
                    if len(started) < len(sent):
                        time.sleep(0.05)
        finally:
            stop_process(proc)
    if len(started) < len(sent):
        raise RuntimeError(f"only {len(started)} of {len(sent)} jobs started")
    return summarise([(started[j] - sent[j]) * 1000 for j in sent])


def _done(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, result FROM jobs WHERE status = 'done'").fetchall()
    return dict(rows)


async def _wait_done(
    db: Path, count: int, deadline_s: float, worker: subprocess.Popen[bytes]
) -> dict[int, str]:
    end = time.monotonic() + deadline_s
    while True:
        done = _done(db)
        if len(done) >= count:
            return done
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited early with code {worker.returncode}")
        if time.monotonic() > end:
            raise RuntimeError(f"only {len(done)} of {count} jobs done after {deadline_s:.0f} s")
        await asyncio.sleep(0.02)


async def processes_run(
    jobs: int, interval_s: float, concurrency: int, idle_s: float, deadline_s: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        db = Path(tmp) / "latency-processes.db"
        url = f"sqlite:///{db}"
        service = Service(config=ServiceConfig(store=url))
        await service.start(workers=False)  # creates the schema before the worker opens it
        worker = spawn_worker(url, "bench-idle", concurrency, cwd=Path(tmp))
        try:
            await service.enqueue("stamp", {"i": -1})  # the worker is up once this ran
            await _wait_done(db, 1, 30.0, worker)
            await asyncio.sleep(0.5)
            cpu0, wall0 = cpu_seconds(worker.pid), time.monotonic()
            await asyncio.sleep(idle_s)
            idle_cpu = (cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - wall0) * 100
            sent: dict[int, float] = {}
            cpu0, wall0 = cpu_seconds(worker.pid), time.monotonic()
            origin = time.perf_counter()
            for i in range(jobs):
                pause = origin + i * interval_s - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                at = time.time()
                job = await service.enqueue("stamp", {"i": i})
                sent[job.id] = at
            busy_cpu = (cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - wall0) * 100
            done = await _wait_done(db, jobs + 1, deadline_s, worker)
        finally:
            stop_process(worker)
            await service.stop()
    result = summarise([(json.loads(done[i])["t"] - at) * 1000 for i, at in sent.items()])
    return {**result, "idle_cpu_pct": idle_cpu, "busy_cpu_pct": busy_cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("python", "http", "processes"), default="python")
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--interval", type=float, default=2.0, help="ms between arrivals")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--idle", type=float, default=10.0, help="s of idle worker CPU (processes)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 1 <= args.jobs <= 100_000 or args.interval <= 0:
        parser.error("--runs must be 1..20, --jobs 1..100,000, --interval > 0")

    logging.basicConfig(level=logging.WARNING)
    print_machine()
    print(
        f"# mode {args.mode}: {args.jobs} jobs, one every {args.interval} ms, "
        f"{args.runs} runs" + (f", loop {args.loop}" if args.mode == "python" else ""),
        flush=True,
    )
    summary = []
    failed = False
    if args.mode == "processes":
        args.stores = "sqlite"
    for kind in args.stores.split(","):
        runs = []
        for _ in range(args.runs):
            if args.mode == "python":

                async def run(k: str = kind) -> dict[str, float]:
                    return await python_run(
                        k, args.jobs, args.interval / 1000, args.concurrency, args.deadline
                    )

                result = run_async(run, args.loop)
            elif args.mode == "processes":

                async def across() -> dict[str, float]:
                    return await processes_run(
                        args.jobs, args.interval / 1000, 64, args.idle, args.deadline
                    )

                result = run_async(across, args.loop)
            else:
                result = http_run(kind, args.jobs, args.interval / 1000, args.deadline)
            runs.append(result)
            cpu = (
                f"  worker CPU idle {result['idle_cpu_pct']:.2f} %, "
                f"busy {result['busy_cpu_pct']:.1f} %"
                if "idle_cpu_pct" in result
                else ""
            )
            print(
                f"  {kind:6} p50 {result['p50_ms']:6.3f} ms  p90 {result['p90_ms']:6.3f} ms  "
                f"p99 {result['p99_ms']:6.3f} ms  max {result['max_ms']:7.3f} ms{cpu}",
                flush=True,
            )
        p50 = median([r["p50_ms"] for r in runs])
        p99 = median([r["p99_ms"] for r in runs])
        entry: dict[str, Any] = {"mode": args.mode, "store": kind, "median_p50_ms": p50,
                                 "median_p99_ms": p99, "runs": runs}  # fmt: skip
        extra = ""
        if args.mode == "processes":
            idle = median([r["idle_cpu_pct"] for r in runs])
            entry["median_idle_cpu_pct"] = idle
            ok = (
                p50 <= TARGET_PROCESSES_P50_MS
                and p99 <= TARGET_PROCESSES_P99_MS
                and idle < TARGET_IDLE_CPU_PCT
            )
            extra = f", idle worker CPU {idle:.2f} %"
            targets = (
                f"p50 <= {TARGET_PROCESSES_P50_MS}, p99 <= {TARGET_PROCESSES_P99_MS}, "
                f"CPU < {TARGET_IDLE_CPU_PCT} %"
            )
        else:
            ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
            targets = f"p50 <= {TARGET_P50_MS}, p99 <= {TARGET_P99_MS}"
        failed |= not ok
        print(
            f"{args.mode} {kind}: median p50 {p50:.3f} ms, p99 {p99:.3f} ms{extra} "
            f"(targets {targets}: {'PASS' if ok else 'FAIL'})",
            flush=True,
        )
        entry["pass"] = ok
        summary.append(entry)
    emit_json(args.json, {"benchmark": "latency", "results": summary})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
