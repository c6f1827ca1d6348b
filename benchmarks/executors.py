"""CPU-bound jobs: thread executor vs process executor, in process, on SQLite.

Each job runs ``cpu_tasks.crunch`` (pure-Python arithmetic that holds the
GIL). In threads, jobs take turns on one core whatever the concurrency; in
worker processes (``executor="process"``) they use every core. The timed
part is ``service.start()`` → all jobs done; process start-up is included.

    .venv/bin/python benchmarks/executors.py              # 200 jobs of ~20 ms, 3 runs each
    .venv/bin/python benchmarks/executors.py --jobs 400 --loops 400000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

from _common import emit_json, median, print_machine, run_async
from cpu_tasks import crunch

from servcore import Service, ServiceConfig


async def one_run(executor: str, jobs: int, loops: int) -> float:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        cores = os.cpu_count() or 1
        config = ServiceConfig(
            store=f"sqlite:///{Path(tmp) / 'executors.db'}", concurrency=cores, processes=cores
        )
        service = Service(config=config)
        service.registry.register("crunch", crunch, executor=executor)  # type: ignore[arg-type]
        await service.store.open()
        try:
            await service.enqueue_many(
                [service.build_job({"task": "crunch", "loops": loops}) for _ in range(jobs)]
            )
            started = time.perf_counter()
            await service.start()
            try:
                deadline = started + 600
                while time.perf_counter() < deadline:
                    if (await service.count_jobs()).done >= jobs:
                        return jobs / (time.perf_counter() - started)
                    await asyncio.sleep(0.005)
                raise RuntimeError(f"not all {jobs} jobs done within 600 s")
            finally:
                await service.stop(grace=5)
        finally:
            await service.store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--loops", type=int, default=200_000, help="work per job")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    started = time.perf_counter()
    crunch_ms = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        crunch(_FakeJob(args.loops))  # type: ignore[arg-type]
        crunch_ms = (time.perf_counter() - t0) * 1000
    print(f"one job alone: {crunch_ms:.1f} ms of CPU")
    results = {}
    for executor in ("thread", "process"):
        rates = [
            run_async(lambda e=executor: one_run(e, args.jobs, args.loops))
            for _ in range(args.runs)
        ]
        results[executor] = median(rates)
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"{executor:8} executor: median {median(rates):8,.1f} jobs/s  ({runs})")
    print(f"process / thread: {results['process'] / results['thread']:.2f}x")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    emit_json(args.json, {"benchmark": "executors", "job_ms": crunch_ms, "results": results})
    return 0


class _FakeJob:
    def __init__(self, loops: int) -> None:
        self.payload = {"loops": loops}


if __name__ == "__main__":
    raise SystemExit(main())
