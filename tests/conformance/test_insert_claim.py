"""Conformance: inserting jobs, reading them back, and claiming them under a lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from servcore.jobs import Job, JobStatus, NewJob
from servcore.store.base import ClaimParams, Store
from tests.conformance.support import (
    LEASE,
    NODE,
    T0,
    at,
    claim,
    claim_one,
    fetch,
    insert,
    new_job,
)

NESTED_PAYLOAD = {
    "task": "résumé",
    "text": "naïve café — 東京 🚀 \u0000 end",
    "numbers": [0, -1, 2**53, 3.25, 1e-9],
    "flags": {"on": True, "off": False, "none": None},
    "deep": {"a": [{"b": [{"c": "ünïcödé"}]}], "empty": {}, "list": []},
    'quote"s': "back\\slash\nnewline",
}


async def test_insert_returns_every_field_in_input_order(store: Store) -> None:
    wanted = [
        NewJob(
            payload={"n": 1},
            run_at=at(60),
            queue="mail",
            task="send",
            priority=7,
            max_attempts=5,
            unique_key="mail:1",
            timeout=2.5,
            backoff=0.75,
        ),
        new_job("default", priority=1),
        new_job("reports", run_at=at(-30), priority=9, max_attempts=1),
    ]

    jobs = await store.insert_jobs(wanted, T0)

    assert len(jobs) == len(wanted)
    for job, asked in zip(jobs, wanted, strict=True):
        assert job.queue == asked.queue
        assert job.task == asked.task
        assert job.payload == asked.payload
        assert job.priority == asked.priority
        assert job.max_attempts == asked.max_attempts
        assert job.run_at == asked.run_at
        assert job.unique_key == asked.unique_key
        assert job.timeout == asked.timeout
        assert job.backoff == asked.backoff
        assert job.inserted_at == T0
        assert job.status is JobStatus.QUEUED
        assert job.attempt == 0
        assert job.lease_token == 0
        assert job.rescued == 0
        assert job.errors == ()
        assert (job.started_at, job.finished_at, job.result) == (None, None, None)
        assert (job.locked_by, job.locked_until) == (None, None)
    assert [job.id for job in jobs] == sorted({job.id for job in jobs})


async def test_ids_increase_across_calls(store: Store) -> None:
    first = await insert(store, new_job(), new_job())
    second = await insert(store, new_job(), now=at(1))
    third = await insert(store, new_job(), new_job(), new_job(), now=at(2))

    ids = [job.id for job in first + second + third]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_insert_of_nothing_inserts_nothing(store: Store) -> None:
    assert await store.insert_jobs([], T0) == []
    assert (await store.count_jobs(T0)).total == 0


async def test_a_batch_of_500_in_one_call(store: Store) -> None:
    wanted = [new_job(payload={"index": index}, priority=index % 10) for index in range(500)]

    jobs = await store.insert_jobs(wanted, T0)

    assert [job.payload["index"] for job in jobs] == list(range(500))
    ids = [job.id for job in jobs]
    assert ids == sorted(ids)
    assert len(set(ids)) == 500
    assert (await store.count_jobs(T0)).queued == 500
    for job in (jobs[0], jobs[250], jobs[-1]):
        assert await store.get_job(job.id) == job


async def test_get_job_reads_back_what_insert_returned(store: Store) -> None:
    [job] = await insert(
        store,
        NewJob(
            payload=NESTED_PAYLOAD,
            run_at=at(3600),
            queue="ünïcode-queue",
            task="résumé",
            priority=3,
            max_attempts=4,
            unique_key="clé-✓",
            timeout=1.5,
            backoff=10.0,
        ),
    )

    stored = await store.get_job(job.id)

    assert stored == job
    assert stored is not None
    assert stored.payload == NESTED_PAYLOAD


async def test_get_job_of_an_unknown_id_is_none(store: Store) -> None:
    [job] = await insert(store, new_job())
    assert await store.get_job(job.id + 1000) is None


async def test_claim_takes_only_the_given_queue(store: Store) -> None:
    mail = await insert(store, new_job("mail"), new_job("mail"))
    await insert(store, new_job("default"), new_job("reports"))

    claimed = await claim(store, "mail")

    assert [job.id for job in claimed] == [job.id for job in mail]
    assert all(job.queue == "mail" for job in claimed)
    assert await claim(store, "mail") == []
    assert (await store.count_jobs(T0)).queued == 2


async def test_claim_orders_by_priority_then_id(store: Store) -> None:
    jobs = await insert(
        store,
        new_job(priority=5),
        new_job(priority=0),
        new_job(priority=9),
        new_job(priority=0),
        new_job(priority=5),
    )
    expected = [jobs[1].id, jobs[3].id, jobs[0].id, jobs[4].id, jobs[2].id]

    claimed = await claim(store)

    assert [job.id for job in claimed] == expected


async def test_claim_respects_the_limit(store: Store) -> None:
    jobs = await insert(store, *(new_job() for _ in range(5)))

    first = await claim(store, limit=2)
    second = await claim(store, limit=2)
    third = await claim(store, limit=2)
    fourth = await claim(store, limit=2)

    assert [job.id for job in first] == [jobs[0].id, jobs[1].id]
    assert [job.id for job in second] == [jobs[2].id, jobs[3].id]
    assert [job.id for job in third] == [jobs[4].id]
    assert fourth == []


async def test_claim_puts_the_job_under_a_lease(store: Store) -> None:
    [inserted] = await insert(store, new_job(max_attempts=4), now=at(-10))
    until = at(45)

    await store.register_node("worker-7")
    [job] = await store.claim_jobs(ClaimParams("default", 1, "worker-7", T0, until))

    assert job.id == inserted.id
    assert job.status is JobStatus.RUNNING
    assert job.attempt == 1
    assert job.started_at == T0
    assert job.locked_by == "worker-7"
    assert job.locked_until == until
    assert job.lease_token == inserted.lease_token + 1
    assert job.finished_at is None
    # Unchanged by claiming:
    assert (job.payload, job.max_attempts, job.inserted_at) == (
        inserted.payload,
        inserted.max_attempts,
        inserted.inserted_at,
    )
    assert await store.get_job(job.id) == job


async def test_jobs_not_yet_due_are_not_claimed_until_due(store: Store) -> None:
    [later] = await insert(store, new_job(run_at=at(60)))
    [now_job] = await insert(store, new_job(run_at=T0))

    assert [job.id for job in await claim(store, now=T0)] == [now_job.id]
    assert await claim(store, now=at(59.999999)) == []
    [claimed] = await claim(store, now=at(60))
    assert claimed.id == later.id
    assert claimed.started_at == at(60)


async def test_a_job_due_later_competes_by_priority_once_due(store: Store) -> None:
    [scheduled] = await insert(store, new_job(run_at=at(30), priority=0))
    [ready] = await insert(store, new_job(run_at=T0, priority=5))

    first = await claim_one(store, now=at(30))
    second = await claim_one(store, now=at(30))

    assert [first.id, second.id] == [scheduled.id, ready.id]


async def test_a_claimed_job_is_not_claimed_again(store: Store) -> None:
    [job] = await insert(store, new_job())
    first = await claim(store)

    again = await claim(store, now=at(1))
    much_later = await claim(store, now=at(3600), node="node-b")

    assert [job.id for job in first] == [job.id]
    assert again == []
    assert much_later == []
    assert (await fetch(store, job.id)).locked_by == NODE


async def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    jobs = await insert(store, *(new_job(priority=index % 3) for index in range(20)))
    nodes = [f"node-{index}" for index in range(6)]
    for node in nodes:
        await store.register_node(node)

    batches = await asyncio.gather(
        *(store.claim_jobs(ClaimParams("default", 4, node, T0, T0 + LEASE)) for node in nodes)
    )

    claimed: list[Job] = [job for batch in batches for job in batch]
    assert all(len(batch) <= 4 for batch in batches)
    assert sorted(job.id for job in claimed) == [job.id for job in jobs]
    for node, batch in zip(nodes, batches, strict=True):
        for job in batch:
            assert (await fetch(store, job.id)).locked_by == node


async def test_claiming_an_empty_or_unknown_queue_returns_nothing(store: Store) -> None:
    assert await claim(store, "nobody-home") == []
    await insert(store, new_job("elsewhere", run_at=T0 - timedelta(days=1)))
    assert await claim(store, "nobody-home") == []


async def test_concurrent_callers_each_get_their_own_jobs_in_order(store: Store) -> None:
    # Stores may put the inserts of one loop turn in one statement (group commit).
    batches = [
        [new_job(f"q{caller}", priority=n) for n in range(caller % 3 + 1)] for caller in range(40)
    ]

    answers = await asyncio.gather(*(store.insert_jobs(batch, T0) for batch in batches))

    ids = [job.id for jobs in answers for job in jobs]
    assert len(set(ids)) == len(ids) == sum(len(batch) for batch in batches)
    for batch, jobs in zip(batches, answers, strict=True):
        assert [(job.queue, job.priority) for job in jobs] == [(b.queue, b.priority) for b in batch]
        assert [job.id for job in jobs] == sorted(job.id for job in jobs)
        for job in jobs:
            assert (await fetch(store, job.id)).queue == job.queue
