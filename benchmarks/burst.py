"""Issue 10's reproduction, as a user ran it: one ``servcore serve`` on a store,
ordinary calls first, then one burst of batches; did every job run once?

One process (``tests.process_tasks:service``, every execution of ``record``
appended to a file), ``SERVCORE_CONCURRENCY=256``, the default lease (30 s).
The client first makes ordinary calls (20 each of ``GET /stats``,
``GET /jobs``, ``GET /jobs?status=done&page=100``, ``GET /queues``,
``GET /jobs/1``, and ``--singles`` single ``POST /jobs``), then sends
``--batches`` ``POST /jobs/batch`` of 1,000 over 16 connections and polls
``GET /stats`` every 0.5 s until nothing is queued or running (or
``--limit`` s). It prints the time to drain and the outcome: done, failed,
still running, executions, jobs run more than once, rescue lines in the log.

    .venv/bin/python benchmarks/burst.py --store postgres            # fresh schema
    .venv/bin/python benchmarks/burst.py --store sqlite --batches 1000

On the code before issue 10's fix, PostgreSQL left 55,933 of 100,050 jobs
failed and ran them 213,412 times.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import msgspec
from _common import ROOT, emit_json, pg_drop_schema, pg_new_schema, pg_url, print_machine

sys.path.insert(0, str(ROOT))  # for tests.processes

from tests.processes import post_many, servcore_serve

READS = ("/stats", "/jobs", "/jobs?status=done&page=100", "/queues", "/jobs/1")


async def _ordinary_calls(url: str, port: int, singles: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for path in READS:
            for _ in range(20):
                answer = await client.get(path)
                assert answer.status_code < 500, (path, answer.status_code, answer.text)
    body = msgspec.json.encode({"payload": {"task": "record"}})
    answers = await post_many(port, "/jobs", [body] * singles, connections=1)
    assert all(status == 202 for status, _ in answers), answers[:3]


async def _burst(port: int, batches: int) -> None:
    batch = msgspec.json.encode({"jobs": [{"payload": {"task": "record"}}] * 1000})
    answers = await post_many(port, "/jobs/batch", [batch] * batches, connections=16)
    assert all(status == 202 for status, _ in answers), answers[:3]


def run(
    store: str, batches: int, singles: int, limit: float, workdir: Path, src: str | None
) -> dict[str, object]:
    record = workdir / "executions.txt"
    env = {"RECORD_FILE": str(record), "SERVCORE_CONCURRENCY": "256"}
    if src is not None:  # another checkout's servcore (for before/after)
        env["PYTHONPATH"] = f"{src}:{ROOT}"
    args = ["tests.process_tasks:service", "--store", store, "--log-level", "warning"]
    jobs = batches * 1000 + singles
    with servcore_serve(workdir, *args, env=env) as server:
        server.wait_ready()
        asyncio.run(_ordinary_calls(server.url, server.port, singles))
        started = time.monotonic()
        asyncio.run(_burst(server.port, batches))
        stats: dict[str, int] = {}
        while time.monotonic() - started < limit:
            stats = httpx.get(f"{server.url}/stats", timeout=30).json()
            if stats["queued"] == 0 and stats["running"] == 0 and stats["total"] >= jobs:
                break
            time.sleep(0.5)
        drained = time.monotonic() - started
        log = server.output()
    runs = Counter(line.split()[0] for line in record.read_text().splitlines())
    return {
        "store": store.split("?")[0].split(":")[0],
        "jobs": jobs,
        "seconds": round(drained, 2),
        "done": stats.get("done"),
        "failed": stats.get("failed"),
        "running": stats.get("running"),
        "queued": stats.get("queued"),
        "executions": sum(runs.values()),
        "ran_more_than_once": sum(1 for count in runs.values() if count > 1),
        "rescue_lines": log.count("Rescued"),
        "stale_lines": log.count("stale fencing token"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("postgres", "sqlite"), required=True)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--limit", type=float, default=120.0, help="s to wait for the drain")
    parser.add_argument("--json", help="write the outcome to this file")
    parser.add_argument("--src", help="run the servcore package in this src/ directory instead")
    args = parser.parse_args()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="servcore-burst-") as tmp:
        schema = None
        if args.store == "postgres":
            schema = pg_new_schema()
            url = pg_url(schema)
        else:
            url = f"sqlite:///{Path(tmp) / 'jobs.db'}"
        try:
            outcome = run(url, args.batches, args.singles, args.limit, Path(tmp), args.src)
        finally:
            if schema is not None:
                asyncio.run(pg_drop_schema(schema))
    print(" ".join(f"{key}={value}" for key, value in outcome.items()))
    emit_json(args.json, outcome)
    clean = outcome["done"] == outcome["jobs"] == outcome["executions"]
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
