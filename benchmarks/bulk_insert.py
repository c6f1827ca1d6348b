"""Bulk insert throughput: many jobs per store transaction, no workers running.

Builds jobs with ``service.build_job`` and stores them with
``service.enqueue_many`` (the Python face of ``POST /jobs/batch``) in batches
of 1,000 — one transaction each — and reports jobs stored per second.

    .venv/bin/python benchmarks/bulk_insert.py                    # sqlite + postgres, 3 runs
    .venv/bin/python benchmarks/bulk_insert.py --stores sqlite --jobs 100000

Target: >= 50,000 jobs/s into SQLite (synchronous=FULL) and PostgreSQL.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from _common import median, pg_drop_schema, pg_new_schema, print_machine, run_async, run_pg
from throughput import store_url

from servcore import Service, ServiceConfig

TARGET = 50_000.0


async def one_run(kind: str, jobs: int, batch: int) -> float:
    schema = pg_new_schema()
    with tempfile.TemporaryDirectory() as directory:
        service = Service(
            store_url(kind, Path(directory), schema), config=ServiceConfig(node="bench")
        )
        await service.start(workers=False)
        try:
            payload = {"task": "bulk", "to": "user@example.com"}
            started = time.perf_counter()
            for _ in range(jobs // batch):
                await service.enqueue_many([service.build_job(payload) for _ in range(batch)])
            elapsed = time.perf_counter() - started
            counts = await service.count_jobs()
            assert counts.queued == jobs, counts
        finally:
            await service.stop()
            if kind == "postgres":
                await pg_drop_schema(schema)
    return jobs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    print(f"# {args.jobs} jobs in batches of {args.batch}, {args.runs} runs")
    failed = False
    for kind in args.stores.split(","):
        rates = []
        for _ in range(args.runs):
            if kind == "postgres":
                rate = run_pg(lambda kind=kind: one_run(kind, args.jobs, args.batch))
            else:
                rate = run_async(lambda kind=kind: one_run(kind, args.jobs, args.batch))
            rates.append(rate)
            print(f"  {kind:8s} {rate:10,.0f} jobs/s")
        verdict = "PASS" if median(rates) >= TARGET else "FAIL"
        failed |= verdict == "FAIL"
        print(
            f"bulk insert {kind}: median {median(rates):,.0f} jobs/s "
            f"(target >= {TARGET:,.0f}: {verdict})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
