"""Conformance: the counts a store keeps agree with a full count after every
kind of transition, and listings page by keyset with exact or marked totals.

The SQL stores keep finished jobs' counts in a table of their own (triggers;
on PostgreSQL folded by ``tend_tables``); here they are compared, after each
step, with a count of every job listed one by one.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from servcore.job_reads import JobCounts, JobQuery, StatusFilter
from servcore.jobs import JobStatus
from servcore.store.base import Store
from servcore.store.listing_sql import EXACT_COUNT_CAP
from tests.conformance.support import (
    T0,
    at,
    claim,
    completion,
    failure,
    insert,
    lease_of,
    new_job,
)

ALL = JobQuery(limit=100_000)


async def full_count(store: Store, now: datetime) -> tuple[JobCounts, dict[str, Counter[str]]]:
    """Counts by status, and by queue and status, from every job read one by one."""
    jobs = (await store.list_jobs(ALL, now)).jobs
    by_queue: dict[str, Counter[str]] = {}
    for job in jobs:
        kind = job.status.value
        if job.status is JobStatus.QUEUED:
            kind = "scheduled" if job.run_at > now else "available"
        by_queue.setdefault(job.queue, Counter())[kind] += 1
    every = sum(by_queue.values(), Counter())
    counts = JobCounts(
        queued=every["available"] + every["scheduled"],
        running=every["running"],
        done=every["done"],
        failed=every["failed"],
        cancelled=every["cancelled"],
        scheduled=every["scheduled"],
    )
    return counts, by_queue


async def assert_counts_exact(store: Store, now: datetime = T0) -> None:
    expected, by_queue = await full_count(store, now)
    for _ in range(2):  # as written, then after the table care that folds counts
        assert await store.count_jobs(now) == expected
        tallied = {
            info.name: Counter(
                {
                    kind: getattr(info, kind)
                    for kind in ("available", "scheduled", "running", "done", "failed", "cancelled")
                    if getattr(info, kind)
                }
            )
            for info in await store.list_queues(now)
        }
        assert {name: tally for name, tally in tallied.items() if tally} == by_queue
        for status in (None, *sorted(StatusFilter.ALL)):
            page = await store.list_jobs(JobQuery(status=status, limit=1), now)
            assert page.exact
            assert page.total == len(
                (await store.list_jobs(JobQuery(status=status, limit=10_000), now)).jobs
            )
        await store.tend_tables()


async def test_counts_agree_with_a_full_count_after_every_transition(store: Store) -> None:
    inserted = await insert(
        store,
        *(new_job("default") for _ in range(6)),
        new_job("mail", run_at=at(3600)),
        new_job("mail", result_ttl=1),
    )
    await assert_counts_exact(store)

    a, b, c, d, e, f = await claim(store, "default")
    await assert_counts_exact(store)

    assert await store.complete_jobs([completion(a), completion(b)]) == []
    await assert_counts_exact(store)

    assert await store.fail_jobs([failure(c, retry_at=at(5))]) == []  # back to queued
    assert await store.fail_jobs([failure(d), failure(e, cancel=True)]) == []
    await assert_counts_exact(store)

    assert sorted(await store.cancel_jobs([inserted[6].id, f.id], T0)) == sorted(
        [inserted[6].id, f.id]
    )
    await assert_counts_exact(store)

    assert sorted(await store.retry_jobs([d.id, e.id], at(1))) == sorted([d.id, e.id])
    await assert_counts_exact(store, at(1))

    [mail] = await claim(store, "mail", now=at(1))
    assert await store.complete_jobs([completion(mail, finished_at=at(1))]) == []
    requeued = await claim(store, "default", now=at(6))
    assert requeued, "the retried jobs are due again"
    await assert_counts_exact(store, at(6))

    # Leases run out: requeued, then failed as a poison pill.
    report = await store.rescue_expired_leases(at(100), max_rescues=5)
    assert sorted(report.requeued) == sorted(job.id for job in requeued)
    await assert_counts_exact(store, at(100))
    again = await claim(store, "default", now=at(101))
    report = await store.rescue_expired_leases(at(200), max_rescues=0)
    assert sorted(report.failed) == sorted(job.id for job in again)
    await assert_counts_exact(store, at(200))

    assert await store.expire_results(at(300)) == 1  # the mail job's result_ttl of 1 s
    await assert_counts_exact(store, at(300))

    assert await store.prune_finished(at(1e6)) > 0
    await assert_counts_exact(store, at(1e6))
    assert (await store.count_jobs(at(1e6))).done == 0


async def test_a_released_and_extended_lease_keep_the_counts(store: Store) -> None:
    await insert(store, new_job(), new_job())
    first, second = await claim(store)
    assert await store.extend_leases([lease_of(first)], at(60)) == []
    assert await store.release_jobs([lease_of(second)]) == []
    await assert_counts_exact(store)


async def test_keyset_pages_cover_every_match_once_under_every_filter(store: Store) -> None:
    jobs = await insert(
        store,
        *(new_job("default" if n % 3 else "mail", task=f"t{n % 2}") for n in range(40)),
    )
    running = await claim(store, "default", limit=20)
    await store.complete_jobs([completion(job) for job in running[::2]])
    await store.fail_jobs([failure(job) for job in running[1::4]])
    queries = [
        JobQuery(),
        JobQuery(status="done"),
        JobQuery(status="queued"),
        JobQuery(status="running"),
        JobQuery(queue="mail"),
        JobQuery(queue="default", status="failed"),
        JobQuery(task="t1"),
        JobQuery(task="t0", status="done"),
        JobQuery(queue="default", task="t1"),
    ]
    for query in queries:
        every = await store.list_jobs(JobQuery(**{**_fields(query), "limit": 1000}), T0)
        seen: list[int] = []
        after: int | None = None
        while True:
            page = await store.list_jobs(
                JobQuery(**{**_fields(query), "limit": 7, "after_id": after}), T0
            )
            assert page.total == every.total, query
            seen += [job.id for job in page.jobs]
            if len(page.jobs) < 7:
                break
            after = page.jobs[-1].id
        assert seen == [job.id for job in every.jobs], query
        assert len(seen) == every.total, query
    assert len((await store.list_jobs(JobQuery(limit=1000), T0)).jobs) == len(jobs)


def _fields(query: JobQuery) -> dict[str, object]:
    return {"status": query.status, "queue": query.queue, "task": query.task}


async def test_a_total_past_the_cap_is_an_estimate_marked_as_such(store: Store) -> None:
    many = EXACT_COUNT_CAP + 500
    for start in range(0, many, 1000):
        size = min(1000, many - start)
        await insert(
            store,
            *(
                new_job(task="bulk", payload={"task": "bulk", "tag": "hay" if n % 10 else "needle"})
                for n in range(start, start + size)
            ),
        )
    await insert(store, *(new_job(task="rare", payload={"tag": "needle"}) for _ in range(3)))

    by_status = await store.list_jobs(JobQuery(status="queued", limit=5), T0)
    assert (by_status.total, by_status.exact) == (many + 3, True)  # from the tallies
    rare = await store.list_jobs(JobQuery(task="rare", limit=5), T0)
    assert (rare.total, rare.exact) == (3, True)  # counted, under the cap
    bulk = await store.list_jobs(JobQuery(task="bulk", limit=5), T0)
    assert len(bulk.jobs) == 5
    if bulk.exact:  # a store that counts everything (memory) says so
        assert bulk.total == many
    else:
        assert EXACT_COUNT_CAP < bulk.total <= many + 3

    # A text search reads a bounded sample of payloads: exact when the scope
    # fits in it, else estimated from the share of matches.
    rare_needles = await store.list_jobs(JobQuery(task="rare", search="needle", limit=1), T0)
    assert (rare_needles.total, rare_needles.exact) == (3, True)
    needles = await store.list_jobs(JobQuery(search="needle", limit=5), T0)
    assert len(needles.jobs) == 5
    expected = many // 10 + 3
    if needles.exact:
        assert needles.total == expected
    else:
        assert abs(needles.total - expected) <= expected // 10
    bulk_needles = await store.list_jobs(JobQuery(task="bulk", search="needle", limit=5), T0)
    assert len(bulk_needles.jobs) == 5
    if bulk_needles.exact:
        assert bulk_needles.total == many // 10
    else:
        assert abs(bulk_needles.total - many // 10) <= many // 100
