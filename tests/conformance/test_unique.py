"""insert_unique: one job per key within the period, on every store."""

from __future__ import annotations

import asyncio

from servcore.jobs import JobStatus
from servcore.store.base import Store
from tests.conformance.support import T0, at, new_job


def keyed(key: str = "order-42", payload: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return new_job(unique_key=key, payload=payload or {"task": "work", "order": 42})


async def test_the_first_is_created_a_repeat_returns_it(store: Store) -> None:
    first = await store.insert_unique(keyed(), T0, at(-3600))
    assert first.outcome == "created"
    assert first.job.unique_key == "order-42"
    again = await store.insert_unique(keyed(), at(1), at(-3599))
    assert again.outcome == "existing"
    assert again.job.id == first.job.id
    assert (await store.count_jobs(at(1))).total == 1


async def test_the_same_key_with_another_payload_is_a_conflict(store: Store) -> None:
    first = await store.insert_unique(keyed(), T0, at(-3600))
    other = await store.insert_unique(keyed(payload={"task": "work", "order": 43}), T0, at(-3600))
    assert other.outcome == "conflict"
    assert other.job.id == first.job.id
    assert other.job.payload == {"task": "work", "order": 42}
    assert (await store.count_jobs(T0)).total == 1


async def test_after_the_period_the_key_is_free_again(store: Store) -> None:
    first = await store.insert_unique(keyed(), T0, at(-10))
    later = await store.insert_unique(keyed(), at(20), at(10))  # first is older than `since`
    assert later.outcome == "created"
    assert later.job.id != first.job.id


async def test_other_keys_and_plain_inserts_do_not_interfere(store: Store) -> None:
    await store.insert_jobs([new_job()], T0)
    a = await store.insert_unique(keyed("a"), T0, at(-60))
    b = await store.insert_unique(keyed("b"), T0, at(-60))
    assert (a.outcome, b.outcome) == ("created", "created")
    assert a.job.status is JobStatus.QUEUED


async def test_concurrent_submissions_of_one_key_create_one_job(store: Store) -> None:
    results = await asyncio.gather(*(store.insert_unique(keyed(), T0, at(-60)) for _ in range(20)))
    assert [r.outcome for r in results].count("created") == 1
    assert {r.job.id for r in results} == {results[0].job.id}
    assert (await store.count_jobs(T0)).total == 1
