"""What Prometheus metrics cost: throughput with metrics on vs off, and a scrape.

Runs ``throughput.py``'s measurement (20,000 no-op jobs, concurrency 256)
alternately with ``metrics=True`` (the default: every job counted, timed and
put in histograms) and ``metrics=False``, so that both see the same machine
noise, and reports each side's median and the difference.

    .venv/bin/python benchmarks/metrics_cost.py                   # memory + sqlite, 7 pairs
    .venv/bin/python benchmarks/metrics_cost.py --stores sqlite --pairs 11

Target: metrics cost under 10 % of throughput, on SQLite (the default, durable
store). On ``memory://`` a no-op job takes ~7 µs in all, so the ~2 µs of
counting shows as ~20 %; it is reported, not judged.

``--scrape`` measures ``GET /metrics`` instead (through the ASGI app, in
process), on a SQLite file holding ``--history`` finished jobs and 100
waiting jobs in each of 5 queues no worker here runs, for an API-only node
(``start(workers=False)``) and a worker node: scrapes back to back (the
store's sample cached) and scrapes spaced past ``sample_interval`` (each
one finds the sample stale). It also times the reads one sample makes.

    .venv/bin/python benchmarks/metrics_cost.py --scrape --history 100000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import emit_json, median, percentile, print_machine, run_async
from throughput import one_run

from servcore import Service, ServiceConfig, create_app

TARGET = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--scrape", action="store_true", help="measure GET /metrics instead")
    parser.add_argument("--history", type=int, default=100_000, help="finished jobs (--scrape)")
    parser.add_argument("--scrapes", type=int, default=300, help="back-to-back scrapes (--scrape)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    if args.scrape:
        return scrape_cost(args)
    results, failed = [], False
    for kind in args.stores.split(","):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for pair in range(args.pairs):
            # Alternate which side goes first: neither always gets a warm machine.
            for metrics in (True, False) if pair % 2 == 0 else (False, True):
                result = run_async(
                    lambda k=kind, m=metrics: one_run(
                        k, args.concurrency, args.jobs, 1_000, 120.0, m
                    )
                )
                rates[metrics].append(result.jobs_per_s)
        on, off = median(rates[True]), median(rates[False])
        cost = (off - on) / off
        judged = kind != "memory"
        verdict = ("PASS" if cost < TARGET else "FAIL") if judged else "reported"
        failed |= judged and cost >= TARGET
        print(
            f"{kind:8} metrics off {off:9,.0f} jobs/s, on {on:9,.0f} jobs/s: "
            f"cost {cost:+.1%} (target < {TARGET:.0%}: {verdict})",
            flush=True,
        )
        results.append({"store": kind, "off": rates[False], "on": rates[True], "cost": cost})
    emit_json(args.json, {"benchmark": "metrics_cost", "results": results})
    return 1 if failed else 0


# -- the cost of a scrape ---------------------------------------------------

SAMPLE_INTERVAL = 0.2  # short, so spaced scrapes find the sample stale quickly
STALE_SCRAPES = 25
QUEUES = 5
WAITING = 100  # per queue


def scrape_cost(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        path = Path(tmp) / "scrape.db"
        run_async(lambda: _fill(path, args.history))
        for node in ("api", "worker"):
            result = run_async(lambda n=node: _scrapes(path, n, args.scrapes))
            results.append(result)
            print(
                f"{node:6} node, {args.history:,} finished jobs: scrape back to back "
                f"median {result['quick_median_ms']:.2f} ms (p99 {result['quick_p99_ms']:.2f}), "
                f"spaced past sample_interval median {result['stale_median_ms']:.2f} ms "
                f"(max {result['stale_max_ms']:.2f}); {result['queue_series']} queue-depth "
                f"series, {result['bytes']:,} bytes; one sample's reads: list_queues(active) "
                f"{result['list_queues_ms']:.2f} ms, count_jobs {result['count_jobs_ms']:.2f} ms",
                flush=True,
            )
    emit_json(
        args.json, {"benchmark": "metrics_scrape", "history": args.history, "results": results}
    )
    return 0


async def _fill(path: Path, history: int) -> None:
    """``history`` finished jobs, then WAITING jobs in each of QUEUES queues."""
    service = Service(config=ServiceConfig(store=f"sqlite:///{path}", metrics=False))
    await service.store.open()
    try:
        for first in range(0, history, 1_000):
            count = min(1_000, history - first)
            await service.enqueue_many([service.build_job({"task": "old"}) for _ in range(count)])
        await service.enqueue_many(
            [
                service.build_job({"task": "waits"}, queue=f"waiting-{n % QUEUES}")
                for n in range(QUEUES * WAITING)
            ]
        )
    finally:
        await service.store.close()
    with sqlite3.connect(path) as conn:  # finished without running them: the bench is the scrape
        conn.execute(
            "UPDATE jobs SET status = 'done', finished_at = inserted_at WHERE queue = 'default'"
        )


async def _scrapes(path: Path, node: str, scrapes: int) -> dict[str, Any]:
    config = ServiceConfig(
        store=f"sqlite:///{path}", sample_interval=SAMPLE_INTERVAL, node=node, concurrency=4
    )
    service = Service(config=config)
    await service.start(workers=node == "worker")
    app = create_app(service, manage_service=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            # Timed once the queue gauges are there (code before issue 12 had
            # them on worker nodes only, from a sampler of their own).
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if "servcore_queue_depth{" in (await client.get("/metrics")).text:
                    break
                await asyncio.sleep(0.05)
            quick = [await _timed_scrape(client) for _ in range(scrapes)]
            stale = []
            for _ in range(STALE_SCRAPES):
                await asyncio.sleep(SAMPLE_INTERVAL * 1.25)  # a benchmark's pacing
                stale.append(await _timed_scrape(client))
            reads = []
            for _ in range(9):
                started = time.perf_counter()
                await service.queues(active_only=True)
                middle = time.perf_counter()
                await service.count_jobs()
                reads.append((middle - started, time.perf_counter() - middle))
            body = (await client.get("/metrics")).text
    finally:
        await service.stop(grace=1)
    quick.sort()
    return {
        "node": node,
        "quick_median_ms": median(quick) * 1e3,
        "quick_p99_ms": percentile(quick, 0.99) * 1e3,
        "stale_median_ms": median(stale) * 1e3,
        "stale_max_ms": max(stale) * 1e3,
        "queue_series": body.count("servcore_queue_depth{"),
        "bytes": len(body),
        "list_queues_ms": median([a for a, _ in reads]) * 1e3,
        "count_jobs_ms": median([b for _, b in reads]) * 1e3,
    }


async def _timed_scrape(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.get("/metrics")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
