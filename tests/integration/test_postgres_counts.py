"""PostgreSQL: the finished-job counts stay exact under concurrent writers.

Three stores on one schema stand for three nodes: each claims, completes,
fails, cancels, retries and prunes at once, while folds of the appended
count changes (``tend_tables``) run beside them. Afterwards the counts equal a
full count of the table.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from servcore.job_reads import JobQuery
from servcore.jobs import JobError
from servcore.store import store_from_url
from servcore.store.base import ClaimParams, Completion, Failure, Store
from tests.conformance.support import T0, at, new_job
from tests.postgres import DSN, postgres_url, require_postgres

pytestmark = pytest.mark.slow

NODES = 3
ROUNDS = 40


@pytest.fixture
def url() -> str:
    require_postgres()
    return postgres_url()


@pytest.fixture
async def stores(url: str) -> AsyncIterator[list[Store]]:
    opened = [store_from_url(url) for _ in range(NODES)]
    for store in opened:
        await store.open()
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def _node(store: Store, name: str, seed: int) -> None:
    chance = random.Random(seed)
    await store.register_node(name)
    for round_ in range(ROUNDS):
        now = at(round_)
        await store.insert_jobs([new_job(queue=chance.choice("ab")) for _ in range(20)], now)
        for queue in "ab":
            claimed = await store.claim_jobs(
                ClaimParams(queue, 10, name, now, now + timedelta(seconds=30))
            )
            done, failed = claimed[: len(claimed) // 2], claimed[len(claimed) // 2 :]
            await store.complete_jobs([Completion(j.id, j.lease_token, now, None) for j in done])
            await store.fail_jobs(
                [
                    Failure(j.id, j.lease_token, JobError(j.attempt, now, "boom", None), None)
                    for j in failed
                ]
            )
            if failed and chance.random() < 0.5:
                await store.retry_jobs([j.id for j in failed[:2]], now)
        if chance.random() < 0.3:
            page = await store.list_jobs(JobQuery(status="queued", limit=3), now)
            await store.cancel_jobs([job.id for job in page.jobs], now)
        if chance.random() < 0.2:
            await store.prune_finished(at(round_ - 5))
        if chance.random() < 0.3:
            await store.tend_tables()


async def test_counts_stay_exact_with_three_nodes_writing_at_once(
    url: str, stores: list[Store]
) -> None:
    await asyncio.gather(*(_node(store, f"node-{n}", n) for n, store in enumerate(stores)))

    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            f'SELECT queue, status, count(*) AS n FROM "{schema}".servcore_jobs '
            "WHERE status IN ('done', 'failed', 'cancelled') GROUP BY queue, status"
        )
    finally:
        await conn.close()
    expected = Counter({(row["queue"], row["status"]): row["n"] for row in rows})
    assert sum(expected.values()) > 0
    for _ in range(2):  # before the last fold and after it
        infos = await stores[0].list_queues(T0)
        counted = Counter(
            {
                (info.name, status): getattr(info, status)
                for info in infos
                for status in ("done", "failed", "cancelled")
                if getattr(info, status)
            }
        )
        assert counted == expected
        await stores[1].tend_tables()
