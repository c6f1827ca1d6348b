"""Conformance: recording how a run ended — complete, fail, cancel, release — under fencing."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from servcore.jobs import JobError, JobStatus
from servcore.store.base import Completion, Failure, Lease, Store
from tests.conformance.support import (
    LEASE,
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


@pytest.mark.parametrize(
    "result",
    [{"sum": 3, "nested": {"list": [1, "two", None]}}, ["a", 1.5], "ok ✓", 42, None],
)
async def test_complete_marks_done_with_result(store: Store, result: Any) -> None:
    await insert(store, new_job())
    running = await claim_one(store)

    stale = await store.complete_jobs([completion(running, result=result, finished_at=at(5))])

    assert stale == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.DONE
    assert job.result == result
    assert job.finished_at == at(5)
    assert (job.locked_by, job.locked_until) == (running.locked_by, None)
    assert (job.attempt, job.started_at, job.lease_token) == (1, T0, running.lease_token)
    assert await claim(store, now=at(10)) == []


async def test_complete_with_a_wrong_token_is_stale_and_changes_nothing(store: Store) -> None:
    await insert(store, new_job())
    running = await claim_one(store)

    stale = await store.complete_jobs(
        [Completion(running.id, running.lease_token + 1, at(1), "forged")]
    )

    assert stale == [running.id]
    assert await fetch(store, running.id) == running


async def test_complete_of_a_job_not_running_is_stale(store: Store) -> None:
    [queued] = await insert(store, new_job())
    await insert(store, new_job("other"))
    done = await claim_one(store, "other")
    assert await store.complete_jobs([completion(done, result="first")]) == []

    stale = await store.complete_jobs(
        [
            Completion(queued.id, queued.lease_token, at(1), "never ran"),
            completion(done, result="second", finished_at=at(2)),
            Completion(queued.id + done.id + 100, 1, at(1), "no such job"),
        ]
    )

    assert stale == [queued.id, done.id, queued.id + done.id + 100]
    assert await fetch(store, queued.id) == queued
    after = await fetch(store, done.id)
    assert (after.result, after.finished_at) == ("first", T0)


async def test_a_batch_completes_the_held_and_refuses_the_rest(store: Store) -> None:
    await insert(store, new_job(), new_job(), new_job())
    first, second, third = await claim(store)

    stale = await store.complete_jobs(
        [
            completion(first, result=1),
            Completion(second.id, second.lease_token - 1, T0, 2),
            completion(third, result=3),
        ]
    )

    assert stale == [second.id]
    assert (await fetch(store, first.id)).status is JobStatus.DONE
    assert (await fetch(store, second.id)).status is JobStatus.RUNNING
    assert (await fetch(store, third.id)).result == 3


async def test_a_late_completion_from_a_lost_run_cannot_overwrite_the_new_run(
    store: Store,
) -> None:
    await insert(store, new_job())
    old_run = await claim_one(store)
    report = await store.rescue_expired_leases(T0 + LEASE, max_rescues=5)
    assert report.requeued == [old_run.id]
    new_run = await claim_one(store, now=at(31))
    assert new_run.lease_token == old_run.lease_token + 1

    stale = await store.complete_jobs([completion(old_run, result="old", finished_at=at(32))])
    stale_failure = await store.fail_jobs([failure(old_run, at_time=at(32))])
    stale_release = await store.release_jobs([lease_of(old_run)])

    assert (stale, stale_failure, stale_release) == ([old_run.id],) * 3
    # The old run did end: its rescue no longer counts toward the poison-pill cap.
    assert await fetch(store, new_run.id) == msgspec.structs.replace(new_run, rescued=0)
    assert await store.complete_jobs([completion(new_run, result="new", finished_at=at(33))]) == []
    job = await fetch(store, new_run.id)
    assert (job.status, job.result, job.finished_at) == (JobStatus.DONE, "new", at(33))


async def test_fail_with_retry_requeues_for_later(store: Store) -> None:
    await insert(store, new_job())
    running = await claim_one(store)
    retry_at = at(60)

    stale = await store.fail_jobs(
        [failure(running, at_time=at(1), retry_at=retry_at, message="oops", traceback="Trace\n  x")]
    )

    assert stale == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.QUEUED
    assert job.run_at == retry_at
    # The attempt's start is kept beside its end: the job's started_at moves on.
    assert job.errors == (JobError(1, at(1), "oops", "Trace\n  x", started_at=T0),)
    assert (job.locked_by, job.locked_until, job.finished_at) == (None, None, None)
    assert job.attempt == 1
    assert job.is_scheduled(at(1))
    assert await claim(store, now=at(59)) == []
    again = await claim_one(store, now=retry_at)
    assert (again.id, again.attempt, again.lease_token) == (job.id, 2, running.lease_token + 1)


async def test_fail_without_retry_ends_failed(store: Store) -> None:
    await insert(store, new_job())
    running = await claim_one(store)

    stale = await store.fail_jobs([failure(running, at_time=at(2), message="fatal")])

    assert stale == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.FAILED
    assert job.finished_at == at(2)
    assert job.errors == (JobError(1, at(2), "fatal", None, started_at=T0),)
    assert (job.locked_by, job.locked_until) == (running.locked_by, None)
    assert await claim(store, now=at(3600)) == []


async def test_fail_with_cancel_ends_cancelled(store: Store) -> None:
    await insert(store, new_job())
    running = await claim_one(store)

    assert await store.fail_jobs([failure(running, at_time=at(3), cancel=True)]) == []

    job = await fetch(store, running.id)
    assert job.status is JobStatus.CANCELLED
    assert job.finished_at == at(3)
    assert [error.error for error in job.errors] == ["boom"]
    assert (job.locked_by, job.locked_until) == (running.locked_by, None)
    assert await claim(store, now=at(3600)) == []


async def test_fail_of_a_stale_lease_changes_nothing(store: Store) -> None:
    [queued] = await insert(store, new_job())
    await insert(store, new_job("other"))
    running = await claim_one(store, "other")
    forged = Failure(running.id, running.lease_token + 1, JobError(1, T0, "forged"), retry_at=None)

    stale = await store.fail_jobs(
        [forged, Failure(queued.id, 0, JobError(0, T0, "never ran"), retry_at=at(5))]
    )

    assert stale == [running.id, queued.id]
    assert await fetch(store, running.id) == running
    assert await fetch(store, queued.id) == queued


async def test_errors_accumulate_across_attempts(store: Store) -> None:
    await insert(store, new_job(max_attempts=3))
    first = await claim_one(store)
    await store.fail_jobs([failure(first, at_time=at(1), retry_at=at(10), message="e1")])
    second = await claim_one(store, now=at(10))
    await store.fail_jobs(
        [failure(second, at_time=at(11), retry_at=at(20), message="e2", traceback="tb2")]
    )
    third = await claim_one(store, now=at(20))

    assert await store.fail_jobs([failure(third, at_time=at(21), message="e3")]) == []

    job = await fetch(store, first.id)
    assert job.status is JobStatus.FAILED
    assert job.attempt == 3
    assert job.errors == (
        JobError(1, at(1), "e1", None, started_at=T0),
        JobError(2, at(11), "e2", "tb2", started_at=at(10)),
        JobError(3, at(21), "e3", None, started_at=at(20)),
    )


async def test_release_puts_the_job_back_without_spending_an_attempt(store: Store) -> None:
    [inserted] = await insert(store, new_job())
    running = await claim_one(store)

    assert await store.release_jobs([lease_of(running)]) == []

    job = await fetch(store, running.id)
    assert job.status is JobStatus.QUEUED
    assert job.attempt == inserted.attempt
    assert (job.started_at, job.locked_by, job.locked_until) == (None, None, None)
    again = await claim_one(store, now=at(1))
    assert (again.id, again.attempt) == (job.id, 1)
    assert again.lease_token == running.lease_token + 1


async def test_release_of_a_stale_lease_is_refused(store: Store) -> None:
    [queued] = await insert(store, new_job())
    await insert(store, new_job("other"))
    running = await claim_one(store, "other")

    stale = await store.release_jobs(
        [Lease(running.id, running.lease_token - 1), Lease(queued.id, 0)]
    )

    assert stale == [running.id, queued.id]
    assert await fetch(store, running.id) == running
    assert await fetch(store, queued.id) == queued
    assert await store.complete_jobs([completion(running)]) == []
    assert await store.release_jobs([lease_of(running)]) == [running.id]
    assert (await fetch(store, running.id)).status is JobStatus.DONE


async def test_a_finished_job_keeps_the_node_that_ran_it(store: Store) -> None:
    done, failed, retried = await insert(store, new_job(), new_job(max_attempts=1), new_job())
    first, second, third = await claim(store)
    assert first.locked_by is not None
    await store.complete_jobs([completion(first)])
    await store.fail_jobs([failure(second, retry_at=None), failure(third, retry_at=at(60))])
    assert (await fetch(store, done.id)).locked_by == first.locked_by
    assert (await fetch(store, failed.id)).locked_by == second.locked_by
    assert (await fetch(store, done.id)).locked_until is None
    assert (await fetch(store, retried.id)).locked_by is None  # waiting: nobody's
