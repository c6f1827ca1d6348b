"""Conformance: pruning finished jobs."""

from __future__ import annotations

from servcore.job_reads import JobQuery
from servcore.jobs import JobStatus
from servcore.store.base import Store
from tests.conformance.support import (
    T0,
    at,
    claim,
    completion,
    failure,
    fetch,
    insert,
    new_job,
)


async def test_prune_deletes_only_jobs_finished_before_the_cutoff(store: Store) -> None:
    [queued, scheduled] = await insert(store, new_job("idle"), new_job("idle", run_at=at(-1e6)))
    await insert(store, *(new_job() for _ in range(7)))
    old_done, old_failed, old_cancelled, new_done, new_failed, at_cutoff, running = await claim(
        store
    )
    await store.complete_jobs(
        [
            completion(old_done, finished_at=at(10)),
            completion(new_done, finished_at=at(200)),
            completion(at_cutoff, finished_at=at(100)),
        ]
    )
    await store.fail_jobs(
        [
            failure(old_failed, at_time=at(20)),
            failure(old_cancelled, at_time=at(30), cancel=True),
            failure(new_failed, at_time=at(150)),
        ]
    )

    pruned = await store.prune_finished(at(100))

    assert pruned == 3
    for gone in (old_done, old_failed, old_cancelled):
        assert await store.get_job(gone.id) is None
    assert (await fetch(store, new_done.id)).status is JobStatus.DONE
    assert (await fetch(store, new_failed.id)).status is JobStatus.FAILED
    assert (await fetch(store, at_cutoff.id)).status is JobStatus.DONE
    assert (await fetch(store, running.id)).status is JobStatus.RUNNING
    assert await fetch(store, queued.id) == queued
    assert await fetch(store, scheduled.id) == scheduled
    counts = await store.count_jobs(T0)
    assert (counts.done, counts.failed, counts.cancelled, counts.running) == (2, 1, 0, 1)
    assert counts.total == 6


async def test_prune_never_touches_queued_retries_or_running_jobs(store: Store) -> None:
    await insert(store, new_job(), new_job())
    retrying, running = await claim(store)
    await store.fail_jobs([failure(retrying, at_time=at(1), retry_at=at(2))])

    assert await store.prune_finished(at(1e6)) == 0
    assert (await fetch(store, retrying.id)).status is JobStatus.QUEUED
    assert (await fetch(store, running.id)).status is JobStatus.RUNNING


async def test_pruned_ids_are_not_reused(store: Store) -> None:
    await insert(store, new_job())
    [job] = await claim(store)
    await store.complete_jobs([completion(job)])
    assert await store.prune_finished(at(1)) == 1

    [later] = await insert(store, new_job(), now=at(2))

    assert later.id > job.id
    assert (await store.count_jobs(at(2))).total == 1


async def test_finished_jobs_expire_after_their_own_result_ttl(store: Store) -> None:
    await insert(
        store,
        new_job(result_ttl=10),  # done at 0: expires at 10
        new_job(result_ttl=10.5),  # failed at 5: expires at 15.5
        new_job(result_ttl=1),  # cancelled while running at 2: expires at 3
        new_job(),  # no ttl: kept until the retention prunes it
        new_job(result_ttl=1),  # fails, then retried: not finished, not expired
        new_job(result_ttl=1),  # still running
    )
    done, failed, cancelled, kept, retried, running = await claim(store)
    assert done.result_ttl == 10
    assert (await fetch(store, failed.id)).result_ttl == 10.5
    await store.complete_jobs([completion(done), completion(kept)])
    await store.fail_jobs(
        [failure(failed, at_time=at(5), retry_at=None), failure(retried, retry_at=None)]
    )
    await store.cancel_jobs([cancelled.id], at(2))
    await store.retry_jobs([retried.id], at(0.5))  # before its ttl ran out

    assert await store.expire_results(at(2.9)) == 0
    assert await store.expire_results(at(3)) == 1
    assert await store.get_job(cancelled.id) is None
    assert await store.expire_results(at(15)) == 1  # `done`, at 10
    assert await store.get_job(done.id) is None
    assert await store.expire_results(at(15.5)) == 1
    assert await store.expire_results(at(10_000)) == 0
    survivors = {job.id for job in (await store.list_jobs(JobQuery(), at(10_000))).jobs}
    assert survivors == {kept.id, retried.id, running.id}
    assert (await store.count_jobs(at(10_000))).total == 3
