"""End-to-end throughput of no-op jobs, in process.

For each store and concurrency: open the store, enqueue N jobs from Python
(``service.build_job`` + ``service.enqueue_many`` in batches), then start the
workers and time until every job is ``done`` (the handler's own count says
when the last one ran; ``store.count_jobs`` then confirms all N are recorded
done, with a deadline). The timed part is ``service.start()`` → all done.

    .venv/bin/python benchmarks/throughput.py                     # memory + sqlite
    .venv/bin/python benchmarks/throughput.py --stores sqlite --concurrency 64,256,1024
    .venv/bin/python benchmarks/throughput.py --stores postgres   # fresh schema per run

Targets: memory >= 50,000 jobs/s, SQLite (synchronous=FULL) >= 15,000 jobs/s,
PostgreSQL (loopback, ``SERVCORE_BENCH_PG``, schema ``bench_<random>`` dropped
after each run) >= 10,000 jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import (
    emit_json,
    median,
    pg_drop_schema,
    pg_new_schema,
    pg_url,
    print_machine,
    run_async,
    run_pg,
)

from servcore import Service, ServiceConfig
from servcore.jobs import Job

TARGETS = {"memory": 50_000.0, "sqlite": 15_000.0, "postgres": 10_000.0}


@dataclass
class RunResult:
    store: str
    concurrency: int
    jobs: int
    enqueue_s: float
    enqueue_per_s: float
    drain_s: float
    jobs_per_s: float


def store_url(kind: str, directory: Path, schema: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{directory / 'throughput.db'}"
    if kind == "postgres":
        return pg_url(schema)
    raise SystemExit(f"unknown store {kind!r}: use memory, sqlite or postgres")


async def one_run(
    kind: str, concurrency: int, jobs: int, batch: int, deadline_s: float, metrics: bool = True
) -> RunResult:
    schema = pg_new_schema()
    try:
        return await _one_run(kind, concurrency, jobs, batch, deadline_s, schema, metrics)
    finally:
        if kind == "postgres":
            await pg_drop_schema(schema)


async def _one_run(
    kind: str,
    concurrency: int,
    jobs: int,
    batch: int,
    deadline_s: float,
    schema: str,
    metrics: bool,
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        url = store_url(kind, Path(tmp), schema)
        config = ServiceConfig(store=url, concurrency=concurrency, metrics=metrics)
        service = Service(config=config)
        ran = 0
        all_ran = asyncio.Event()

        @service.task("noop")
        async def noop(job: Job) -> None:
            nonlocal ran
            ran += 1
            if ran >= jobs:
                all_ran.set()

        # Open the store only (no workers yet); start() later reuses it.
        await service.store.open()
        try:
            t0 = time.perf_counter()
            for first in range(0, jobs, batch):
                count = min(batch, jobs - first)
                await service.enqueue_many(
                    [service.build_job({"task": "noop", "n": first + i}) for i in range(count)]
                )
            enqueue_s = time.perf_counter() - t0

            t1 = time.perf_counter()
            await service.start()
            try:
                await asyncio.wait_for(all_ran.wait(), deadline_s)
                done = 0
                poll_deadline = time.perf_counter() + deadline_s
                while time.perf_counter() < poll_deadline:
                    done = (await service.count_jobs()).done
                    if done >= jobs:
                        break
                    await asyncio.sleep(0.001)
                drain_s = time.perf_counter() - t1
                if done < jobs:
                    raise RuntimeError(f"only {done} of {jobs} jobs done after {deadline_s} s")
            finally:
                await service.stop(grace=5)
        finally:
            await service.store.close()
    return RunResult(kind, concurrency, jobs, enqueue_s, jobs / enqueue_s, drain_s, jobs / drain_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000, help="jobs per enqueue_many call")
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--concurrency", default="256", help="comma-separated, e.g. 64,256,1024")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per run, max")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50 or not 1 <= args.jobs <= 1_000_000:
        parser.error("--runs must be 1..50 and --jobs 1..1,000,000")

    logging.basicConfig(level=logging.WARNING)
    print_machine()
    print(
        f"# {args.jobs} no-op async jobs, enqueue batch {args.batch}, {args.runs} runs, "
        f"loop {args.loop}",
        flush=True,
    )
    summary = []
    failed = False
    for kind in args.stores.split(","):
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            results: list[RunResult] = []
            for _ in range(args.runs):

                async def run(k: str = kind, c: int = concurrency) -> RunResult:
                    return await one_run(k, c, args.jobs, args.batch, args.deadline)

                result = run_pg(run, args.loop) if kind == "postgres" else run_async(run, args.loop)
                results.append(result)
                print(
                    f"  {kind:8} c={concurrency:<5} enqueue {result.enqueue_per_s:9,.0f}/s  "
                    f"drain {result.drain_s:6.3f} s = {result.jobs_per_s:9,.0f} jobs/s",
                    flush=True,
                )
            rate = median([r.jobs_per_s for r in results])
            enqueue = median([r.enqueue_per_s for r in results])
            target = TARGETS[kind]
            verdict = "PASS" if rate >= target else "FAIL"
            failed |= rate < target
            print(
                f"{kind:8} concurrency {concurrency:<5} median {rate:9,.0f} jobs/s "
                f"(target >= {target:,.0f}: {verdict}); enqueue median {enqueue:,.0f}/s",
                flush=True,
            )
            summary.append(
                {
                    "store": kind,
                    "concurrency": concurrency,
                    "median_jobs_per_s": rate,
                    "median_enqueue_per_s": enqueue,
                    "target": target,
                    "pass": rate >= target,
                    "runs": [asdict(r) for r in results],
                }
            )
    emit_json(args.json, {"benchmark": "throughput", "results": summary})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
