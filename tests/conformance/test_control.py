"""cancel_jobs and retry_jobs, on every store."""

from __future__ import annotations

from servcore.jobs import JobStatus
from servcore.store.base import Store
from tests.conformance.support import (
    T0,
    at,
    claim,
    claim_one,
    completion,
    failure,
    fetch,
    insert,
    lease_of,
    new_job,
)


async def test_waiting_jobs_are_cancelled_and_not_claimed(store: Store) -> None:
    _due, later = await insert(store, new_job(), new_job(run_at=at(60)))
    running = (await insert(store, new_job()))[0]
    await claim_one(store)  # takes `due`
    assert await store.cancel_jobs([later.id, running.id], at(1)) == [later.id, running.id]
    gone = await fetch(store, later.id)
    assert gone.status is JobStatus.CANCELLED
    assert gone.finished_at == at(1)
    assert await claim(store, now=at(120)) == []
    assert await store.cancel_jobs([999_999], at(2)) == []  # unknown


async def test_a_running_job_is_cancelled_and_its_outcome_refused(store: Store) -> None:
    (job,) = await insert(store, new_job())
    claimed = await claim_one(store)
    assert await store.cancel_jobs([job.id], at(2)) == [job.id]
    cancelled = await fetch(store, job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at == at(2)
    assert cancelled.locked_by == claimed.locked_by  # the node that ran it
    assert cancelled.started_at is not None  # it did start
    # The worker that still runs it hears "not yours" on every path.
    assert await store.extend_leases([lease_of(claimed)], at(60)) == [job.id]
    assert await store.complete_jobs([completion(claimed)]) == [job.id]
    assert await store.fail_jobs([failure(claimed, retry_at=at(5))]) == [job.id]
    assert (await fetch(store, job.id)).status is JobStatus.CANCELLED
    report = await store.rescue_expired_leases(at(3600), 3)
    assert job.id not in report.requeued + report.failed
    assert await claim(store, now=at(3600)) == []


async def test_finished_jobs_are_not_cancelled(store: Store) -> None:
    done, failed = await insert(store, new_job(), new_job(max_attempts=1))
    first, second = await claim(store)
    await store.complete_jobs([completion(first)])
    await store.fail_jobs([failure(second, retry_at=None)])
    assert await store.cancel_jobs([done.id, failed.id], at(3)) == []
    assert (await fetch(store, done.id)).status is JobStatus.DONE
    assert (await fetch(store, failed.id)).status is JobStatus.FAILED
    (again,) = await insert(store, new_job())
    await store.cancel_jobs([again.id], at(4))
    assert await store.cancel_jobs([again.id], at(5)) == []  # cancelled once is enough
    assert (await fetch(store, again.id)).finished_at == at(4)


async def test_failed_and_cancelled_jobs_are_retried_with_one_more_attempt(store: Store) -> None:
    (job,) = await insert(store, new_job(max_attempts=1))
    claimed = await claim_one(store)
    await store.fail_jobs([failure(claimed, retry_at=None)])
    (other,) = await insert(store, new_job(run_at=at(30)))
    await store.cancel_jobs([other.id], T0)
    assert await store.retry_jobs([job.id, other.id], at(5)) == [job.id, other.id]
    again = await fetch(store, job.id)
    assert again.status is JobStatus.QUEUED
    assert again.finished_at is None
    assert again.max_attempts == 2
    assert len(again.errors) == 1  # the history stays
    rerun = await claim(store, now=at(5))
    assert {j.id for j in rerun} == {job.id, other.id}
    assert await store.retry_jobs([job.id], at(6)) == []  # running now: nothing to retry


async def test_a_retry_after_cancel_still_honours_a_later_backoff(store: Store) -> None:
    (job,) = await insert(store, new_job())
    await store.cancel_jobs([job.id], T0)
    await store.retry_jobs([job.id], T0)
    claimed = await claim_one(store)
    await store.fail_jobs([failure(claimed, retry_at=at(3600))])
    assert await claim(store, now=at(1)) == []  # not before its backoff
    assert [j.id for j in await claim(store, now=at(3600))] == [job.id]


async def test_a_job_past_its_result_ttl_is_not_retried(store: Store) -> None:
    expiring, lasting = await insert(store, new_job(result_ttl=10), new_job(result_ttl=10))
    await store.cancel_jobs([expiring.id, lasting.id], T0)
    assert await store.retry_jobs([expiring.id], at(10)) == []  # gone, even before the expirer
    assert await store.retry_jobs([lasting.id], at(9)) == [lasting.id]
