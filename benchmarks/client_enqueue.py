"""Client enqueue: one job per call, from a process that runs no workers.

Three shapes, each in a fresh store, medians of several runs:

- ``async x1``: one caller, ``await service.enqueue(...)`` one after another;
- ``async x64``: 64 concurrent callers in one process (they share commits:
  the inserts of one event-loop turn are one statement);
- ``sync x1``: one caller, ``service.enqueue_sync(...)`` (a Django or Flask
  app's call; on SQLite committed in the calling thread).

Every call returns only once its job is committed (SQLite ``synchronous=FULL``;
PostgreSQL committed).

    .venv/bin/python benchmarks/client_enqueue.py                  # sqlite + postgres
    .venv/bin/python benchmarks/client_enqueue.py --stores sqlite --jobs 20000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from _common import median, pg_drop_schema, pg_new_schema, print_machine, run_async
from throughput import store_url

from servcore import Service, ServiceConfig

CALLERS = 64


async def async_run(url: str, jobs: int, callers: int) -> float:
    service = Service(config=ServiceConfig(url, node="bench"))
    await service.start(workers=False)
    try:

        async def caller(count: int) -> None:
            for number in range(count):
                await service.enqueue("noop", {"n": number})

        started = time.perf_counter()
        await asyncio.gather(*(caller(jobs // callers) for _ in range(callers)))
        elapsed = time.perf_counter() - started
        assert (await service.count_jobs()).queued == jobs // callers * callers
    finally:
        await service.stop()
    return jobs // callers * callers / elapsed


def sync_run(url: str, jobs: int) -> float:
    service = Service(config=ServiceConfig(url, node="bench"))
    started = time.perf_counter()
    for number in range(jobs):
        service.enqueue_sync("noop", {"n": number})
    elapsed = time.perf_counter() - started
    assert service.loop is not None
    asyncio.run_coroutine_threadsafe(service.stop(), service.loop).result()
    return jobs / elapsed


def one_run(kind: str, shape: str, jobs: int) -> float:
    schema = pg_new_schema()
    with tempfile.TemporaryDirectory() as directory:
        url = store_url(kind, Path(directory), schema)
        try:
            if shape == "sync x1":
                return sync_run(url, jobs)
            callers = CALLERS if shape == "async x64" else 1
            return run_async(lambda: async_run(url, jobs * (10 if callers > 1 else 1), callers))
        finally:
            if kind == "postgres":
                asyncio.run(pg_drop_schema(schema))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=5_000, help="per run (x10 for 64 callers)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    for kind in args.stores.split(","):
        for shape in ("async x1", "async x64", "sync x1"):
            rates = [one_run(kind, shape, args.jobs) for _ in range(args.runs)]
            runs = " / ".join(f"{rate:,.0f}" for rate in rates)
            print(f"{kind:8s} {shape:9s} median {median(rates):8,.0f} jobs/s  ({runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
