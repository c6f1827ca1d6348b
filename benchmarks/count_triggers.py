"""What counting finished jobs costs on PostgreSQL (issue 13): the counting
trigger's own time in the UPDATE statements that claim and complete jobs.

A fresh schema with 5,000 queued jobs; each statement (claim or complete of
50 jobs, then of 1) runs 20 times under ``EXPLAIN (ANALYZE)``, which reports
the time spent in each trigger; medians printed.

    .venv/bin/python benchmarks/count_triggers.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
from datetime import UTC, datetime

import asyncpg
from _common import PG_DSN, pg_drop_schema, pg_new_schema, pg_url, print_machine

from servcore.jobs import NewJob
from servcore.store import store_from_url

RUNS = 20


def new_job() -> NewJob:
    return NewJob(
        payload={"task": "t"}, run_at=datetime(2020, 1, 1, tzinfo=UTC), queue="default", task="t"
    )


async def main() -> None:
    schema = pg_new_schema()
    store = store_from_url(pg_url(schema))
    await store.open()
    try:
        await store.insert_jobs([new_job() for _ in range(5000)], datetime.now(UTC))
        jobs = f'"{schema}".servcore_jobs'
        statements = {
            f"claim {n}": f"UPDATE {jobs} SET status = 'running' WHERE id IN "
            f"(SELECT id FROM {jobs} WHERE status = 'queued' ORDER BY id LIMIT {n})"
            for n in (50, 1)
        }
        for n in (50, 1):
            statements[f"complete {n}"] = (
                f"UPDATE {jobs} SET status = 'done' WHERE id IN "
                f"(SELECT id FROM {jobs} WHERE status = 'running' ORDER BY id LIMIT {n})"
            )
        conn = await asyncpg.connect(PG_DSN)
        try:
            for name in ("claim 50", "complete 50", "claim 1", "complete 1"):
                totals, triggers = [], []
                for _ in range(RUNS):
                    text = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statements[name])
                    plan = json.loads(text)[0]
                    totals.append(plan["Execution Time"])
                    triggers.append(sum(t["Time"] for t in plan.get("Triggers", [])))
                print(
                    f"{name:12} execution median {statistics.median(totals):.3f} ms, "
                    f"of it the counting trigger {statistics.median(triggers):.3f} ms"
                )
        finally:
            await conn.close()
    finally:
        await store.close()
        await pg_drop_schema(schema)


if __name__ == "__main__":
    print_machine()
    asyncio.run(main())
