"""Conformance: extending leases, and rescuing jobs whose lease ran out."""

from __future__ import annotations

from servcore.jobs import JobStatus
from servcore.store.base import Lease, Store
from tests.conformance.support import (
    LEASE,
    NODE,
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

EXPIRY = T0 + LEASE


async def test_extend_pushes_the_lease_forward(store: Store) -> None:
    await insert(store, new_job(), new_job())
    first, second = await claim(store)

    lost = await store.extend_leases([lease_of(first), lease_of(second)], at(300))

    assert lost == []
    for running in (first, second):
        job = await fetch(store, running.id)
        assert job.locked_until == at(300)
        assert (job.status, job.lease_token, job.locked_by) == (
            JobStatus.RUNNING,
            running.lease_token,
            NODE,
        )
    report = await store.rescue_expired_leases(EXPIRY, max_rescues=5)
    assert (report.requeued, report.failed) == ([], [])


async def test_extend_returns_the_leases_no_longer_held(store: Store) -> None:
    [queued] = await insert(store, new_job("idle"))
    await insert(store, new_job(), new_job(), new_job())
    held, finished, forged = await claim(store)
    await store.complete_jobs([completion(finished)])
    missing = queued.id + 1000

    lost = await store.extend_leases(
        [
            lease_of(held),
            lease_of(finished),
            Lease(forged.id, forged.lease_token + 1),
            Lease(queued.id, queued.lease_token),
            Lease(missing, 1),
        ],
        at(300),
    )

    assert lost == [finished.id, forged.id, queued.id, missing]
    assert (await fetch(store, held.id)).locked_until == at(300)
    assert (await fetch(store, forged.id)).locked_until == EXPIRY
    done = await fetch(store, finished.id)
    assert (done.status, done.locked_until) == (JobStatus.DONE, None)
    assert (await fetch(store, queued.id)) == queued


async def test_rescue_takes_only_expired_leases(store: Store) -> None:
    await insert(store, new_job(), new_job(), new_job())
    short, exact, long = await claim(store)
    await store.extend_leases([lease_of(short)], at(10))
    await store.extend_leases([lease_of(long)], at(31))

    report = await store.rescue_expired_leases(EXPIRY, max_rescues=5)

    assert sorted(report.requeued) == [short.id, exact.id]
    assert report.failed == []
    still = await fetch(store, long.id)
    assert (still.status, still.locked_until, still.rescued) == (JobStatus.RUNNING, at(31), 0)


async def test_a_rescued_job_is_requeued_with_a_node_lost_error(store: Store) -> None:
    await insert(store, new_job(max_attempts=3))
    running = await claim_one(store)
    rescue_at = at(45)

    report = await store.rescue_expired_leases(rescue_at, max_rescues=5)

    assert report.requeued == [running.id]
    assert report.failed == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.QUEUED
    assert job.rescued == 1
    assert job.run_at <= rescue_at
    assert (job.locked_by, job.locked_until, job.finished_at) == (None, None, None)
    [error] = job.errors
    assert error.attempt == 1
    assert (error.started_at, error.at) == (T0, rescue_at)  # the lost run, start to end
    assert "node lost" in error.error
    counts = await store.count_jobs(rescue_at)
    assert (counts.queued, counts.running, counts.available) == (1, 0, 1)
    again = await claim_one(store, now=rescue_at)
    assert (again.id, again.attempt, again.lease_token) == (running.id, 2, 2)


async def test_rescue_leaves_jobs_that_are_not_running_alone(store: Store) -> None:
    [queued] = await insert(store, new_job("waiting"))
    await insert(store, new_job(), new_job())
    done, failed = await claim(store)
    await store.complete_jobs([completion(done)])
    await store.fail_jobs([failure(failed)])
    before = [await fetch(store, job_id) for job_id in (queued.id, done.id, failed.id)]

    report = await store.rescue_expired_leases(at(3600), max_rescues=5)

    assert (report.requeued, report.failed) == ([], [])
    assert [await fetch(store, job_id) for job_id in (queued.id, done.id, failed.id)] == before


async def test_a_job_at_its_attempt_limit_is_failed_not_requeued(store: Store) -> None:
    await insert(store, new_job(max_attempts=1))
    running = await claim_one(store)

    report = await store.rescue_expired_leases(at(60), max_rescues=5)

    assert report.failed == [running.id]
    assert report.requeued == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.FAILED
    assert job.finished_at == at(60)
    assert (job.locked_by, job.locked_until) == (None, None)
    [error] = job.errors
    assert "node lost" in error.error
    assert await claim(store, now=at(61)) == []


async def test_a_job_that_keeps_losing_its_worker_is_failed(store: Store) -> None:
    await insert(store, new_job(max_attempts=10))
    moment = T0
    for rescue in range(1, 3):
        running = await claim_one(store, now=moment)
        moment = running.locked_until or moment
        report = await store.rescue_expired_leases(moment, max_rescues=2)
        assert report.requeued == [running.id], f"rescue {rescue} should requeue"
        assert (await fetch(store, running.id)).rescued == rescue

    running = await claim_one(store, now=moment)
    report = await store.rescue_expired_leases(at(3600), max_rescues=2)

    assert report.failed == [running.id]
    assert report.requeued == []
    job = await fetch(store, running.id)
    assert job.status is JobStatus.FAILED
    assert job.rescued == 3
    assert job.finished_at == at(3600)
    assert len(job.errors) == 3
    message = job.errors[-1].error
    assert "node lost" in message
    assert "limit 2" in message


async def test_a_rescued_lease_cannot_be_extended(store: Store) -> None:
    await insert(store, new_job())
    running = await claim_one(store)
    await store.rescue_expired_leases(EXPIRY, max_rescues=5)

    lost = await store.extend_leases([lease_of(running)], at(300))

    assert lost == [running.id]
    job = await fetch(store, running.id)
    assert (job.status, job.locked_until) == (JobStatus.QUEUED, None)


async def test_an_outcome_that_arrives_after_its_rescue_still_counts(store: Store) -> None:
    """The run was alive after all (its node stalled, or could not reach the
    store): while nothing has run the job since, its outcome is taken."""
    done_late, retried_late = await insert(store, new_job(), new_job())
    runs = await claim(store)
    report = await store.rescue_expired_leases(EXPIRY, max_rescues=5)
    assert sorted(report.requeued) == [done_late.id, retried_late.id]

    assert await store.complete_jobs([completion(runs[0], result="ok", finished_at=at(31))]) == []
    assert await store.fail_jobs([failure(runs[1], at_time=at(31), retry_at=at(90))]) == []

    done = await fetch(store, done_late.id)
    assert (done.status, done.result, done.attempt, done.rescued) == (JobStatus.DONE, "ok", 1, 0)
    retried = await fetch(store, retried_late.id)
    assert (retried.status, retried.run_at, retried.rescued) == (JobStatus.QUEUED, at(90), 0)
    assert [error.error for error in retried.errors][-1] == "boom"
    assert await claim(store, now=at(60)) == [], "the finished one is not run again"


async def test_a_job_failed_by_rescue_whose_run_completed_ends_done(store: Store) -> None:
    [job] = await insert(store, new_job())
    run = await claim_one(store)
    report = await store.rescue_expired_leases(EXPIRY, max_rescues=0)
    assert report.failed == [job.id]

    assert await store.complete_jobs([completion(run, result="ok", finished_at=at(31))]) == []

    done = await fetch(store, job.id)
    assert (done.status, done.result, done.rescued) == (JobStatus.DONE, "ok", 0)
