"""The pruner and the expirer on their own: which finished jobs they delete."""

from __future__ import annotations

from servcore.jobs import Job, JobStatus
from servcore.maintenance.pruner import Expirer, Pruner
from servcore.store.memory import MemoryStore
from servcore.testing import FakeClock
from tests.conformance.support import at, claim, completion, failure, insert, new_job
from tests.unit.parts import T0

RETENTION = 3600.0


async def finish(store: MemoryStore, *, seconds: float, result_ttl: float | None = None) -> Job:
    """A job inserted at T0 and finished ``seconds`` after T0: done."""
    await insert(store, new_job(result_ttl=result_ttl))
    (running,) = await claim(store, limit=1)
    await store.complete_jobs([completion(running, finished_at=at(seconds))])
    return running


async def kept(store: MemoryStore, *jobs: Job) -> set[int]:
    """The ids of ``jobs`` still in the store."""
    return {job.id for job in jobs if await store.get_job(job.id) is not None}


async def test_pruner_deletes_only_finished_jobs_older_than_the_retention() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    old_done = await finish(store, seconds=0)
    await insert(store, new_job())
    (old_failed,) = await claim(store, limit=1)
    await store.fail_jobs([failure(old_failed)])
    [old_cancelled] = await insert(store, new_job())
    await store.cancel_jobs([old_cancelled.id], T0)
    on_the_edge = await finish(store, seconds=100)
    recent = await finish(store, seconds=200)
    await insert(store, new_job())
    (old_running,) = await claim(store, limit=1)
    [old_queued] = await insert(store, new_job(run_at=at(-10)))

    clock.advance(RETENTION + 100)  # now - retention is exactly T0 + 100
    pruned = await Pruner(store, RETENTION).run_once(clock.now())

    assert pruned == 3
    everything = (old_done, old_failed, old_cancelled, on_the_edge, recent, old_queued, old_running)
    assert await kept(store, *everything) == {
        on_the_edge.id,
        recent.id,
        old_queued.id,
        old_running.id,
    }
    assert (await store.count_jobs(clock.now())).done == 2
    assert await Pruner(store, RETENTION).run_once(clock.now()) == 0


async def test_pruner_counts_from_the_time_it_is_given() -> None:
    store = MemoryStore()
    done = await finish(store, seconds=0)
    pruner = Pruner(store, retention=60)

    assert await pruner.run_once(at(59)) == 0
    assert await store.get_job(done.id) is not None
    assert await pruner.run_once(at(61)) == 1
    assert await store.get_job(done.id) is None


async def test_expirer_deletes_finished_jobs_once_their_result_ttl_has_passed() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    short = await finish(store, seconds=0, result_ttl=60)
    longer = await finish(store, seconds=0, result_ttl=600)
    kept_forever = await finish(store, seconds=0)
    await insert(store, new_job(result_ttl=30))
    (failed,) = await claim(store, limit=1)
    await store.fail_jobs([failure(failed)])  # final failure at T0
    [waiting] = await insert(store, new_job(result_ttl=1))
    expirer = Expirer(store)

    clock.advance(59.5)
    assert await expirer.run_once(clock.now()) == 1  # the failed one (ttl 30)
    clock.advance(0.5)  # exactly 60 s: expired
    assert await expirer.run_once(clock.now()) == 1
    clock.advance(3600)
    assert await expirer.run_once(clock.now()) == 1

    assert await kept(store, short, longer, kept_forever, failed, waiting) == {
        kept_forever.id,
        waiting.id,
    }
    job = await store.get_job(waiting.id)
    assert job is not None
    assert job.status is JobStatus.QUEUED
