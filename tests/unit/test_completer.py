"""The completer on its own: outcomes written in batches, stale ones reported,
nothing dropped or written twice when the store fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from servcore.jobs import Job, JobStatus
from servcore.runtime.completer import Completer
from servcore.store.base import Completion, Failure, StoreError
from tests.conformance.support import at, claim, completion, failure, fetch, insert, new_job
from tests.conftest import wait_for
from tests.unit.parts import WatchedStore


class Told:
    """What the completer told its runtime, call by call."""

    def __init__(self) -> None:
        self.stale: list[list[int]] = []
        self.written: list[list[datetime]] = []
        self.settled: list[tuple[list[int], list[int]]] = []

    def completer(self, store: WatchedStore) -> Completer:
        return Completer(store, self.stale.append, self.written.append, self.on_settled)

    def on_settled(self, completions: Sequence[Completion], failures: Sequence[Failure]) -> None:
        self.settled.append(([done.id for done in completions], [fail.id for fail in failures]))


async def running(store: WatchedStore, count: int) -> list[Job]:
    await insert(store, *(new_job() for _ in range(count)))
    return await claim(store, limit=count)


async def test_a_flush_writes_what_gathered_with_one_call_of_each_kind() -> None:
    store, told = WatchedStore(), Told()
    a, b, c, retried, failed = await running(store, 5)
    completer = told.completer(store)
    for job in (a, b, c):
        completer.add_completion(completion(job, result=job.id))
    completer.add_failure(failure(retried, retry_at=at(30)))
    completer.add_failure(failure(failed))
    assert completer.pending == 5

    await completer.flush_once()

    assert store.writes == [("complete", [a.id, b.id, c.id]), ("fail", [retried.id, failed.id])]
    assert completer.pending == 0
    assert told.settled == [([a.id, b.id, c.id], [retried.id, failed.id])]
    assert told.written == [[at(30)]]
    assert told.stale == []
    assert (await fetch(store, b.id)).result == b.id
    assert (await fetch(store, retried.id)).status is JobStatus.QUEUED
    assert (await fetch(store, failed.id)).status is JobStatus.FAILED


async def test_run_writes_what_gathers_during_a_write_as_the_next_batch() -> None:
    store, told = WatchedStore(), Told()
    first, second, third = await running(store, 3)
    completer = told.completer(store)
    store.complete_gate.clear()
    runner = asyncio.create_task(completer.run())
    try:
        completer.add_completion(completion(first))
        await wait_for(lambda: store.complete_waiting == 1, message="the first write")
        completer.add_completion(completion(second))
        completer.add_completion(completion(third))
        store.complete_gate.set()
        await wait_for(lambda: completer.pending == 0 and len(told.settled) == 2)
    finally:
        completer.stop()
        await asyncio.wait_for(runner, 5)

    assert store.writes == [("complete", [first.id]), ("complete", [second.id, third.id])]
    # (stop wakes run for one last, empty look)
    settled = [call for call in told.settled if call != ([], [])]
    assert settled == [([first.id], []), ([second.id, third.id], [])]
    for job in (first, second, third):
        assert (await fetch(store, job.id)).status is JobStatus.DONE


async def test_stale_outcomes_are_reported_settled_and_not_scheduled() -> None:
    store, told = WatchedStore(), Told()
    kept, cancelled, taken = await running(store, 3)
    await store.cancel_jobs([cancelled.id, taken.id], at(1))  # no longer held by these runs
    completer = told.completer(store)
    completer.add_completion(completion(kept))
    completer.add_completion(completion(cancelled, result="late"))
    completer.add_failure(failure(taken, retry_at=at(30)))

    await completer.flush_once()

    assert told.stale == [[cancelled.id, taken.id]]
    assert told.settled == [([kept.id, cancelled.id], [taken.id])]
    assert told.written == [[]]  # the refused retry is nothing to wake up for
    assert (await fetch(store, kept.id)).status is JobStatus.DONE
    late = await fetch(store, cancelled.id)
    assert (late.status, late.result) == (JobStatus.CANCELLED, None)
    assert (await fetch(store, taken.id)).status is JobStatus.CANCELLED


async def test_outcomes_are_kept_when_the_store_fails_and_written_on_the_next_flush() -> None:
    store, told = WatchedStore(), Told()
    a, b, later, failed = await running(store, 4)
    completer = told.completer(store)
    completer.add_completion(completion(a))
    completer.add_completion(completion(b))
    completer.add_failure(failure(failed))
    store.fail_next.add("complete")

    with pytest.raises(StoreError):
        await completer.flush_once()

    assert completer.pending == 3
    assert told.settled == [([], [])]
    assert told.written == []
    assert (await fetch(store, a.id)).status is JobStatus.RUNNING
    completer.add_completion(completion(later))  # after the kept ones

    await completer.flush_once()

    assert store.writes == [
        ("complete", [a.id, b.id]),
        ("complete", [a.id, b.id, later.id]),
        ("fail", [failed.id]),
    ]
    assert completer.pending == 0
    assert told.settled[-1] == ([a.id, b.id, later.id], [failed.id])
    for job in (a, b, later):
        assert (await fetch(store, job.id)).status is JobStatus.DONE
    assert (await fetch(store, failed.id)).status is JobStatus.FAILED


async def test_completions_written_before_a_failing_fail_jobs_are_settled_once() -> None:
    store, told = WatchedStore(), Told()
    done, failed = await running(store, 2)
    completer = told.completer(store)
    completer.add_completion(completion(done))
    completer.add_failure(failure(failed))
    store.fail_next.add("fail")

    with pytest.raises(StoreError):
        await completer.flush_once()

    assert told.settled == [([done.id], [])]
    assert completer.pending == 1
    assert (await fetch(store, done.id)).status is JobStatus.DONE

    await completer.flush_once()

    # The completion is not written twice: only the failure is left.
    assert store.writes == [("complete", [done.id]), ("fail", [failed.id]), ("fail", [failed.id])]
    assert told.settled == [([done.id], []), ([], [failed.id])]
    assert (await fetch(store, failed.id)).status is JobStatus.FAILED


async def test_run_raises_for_its_supervisor_and_a_restart_writes_the_kept_batch() -> None:
    store, told = WatchedStore(), Told()
    (job,) = await running(store, 1)
    completer = told.completer(store)
    store.fail_next.add("complete")
    completer.add_completion(completion(job))

    with pytest.raises(StoreError):
        await asyncio.wait_for(completer.run(), 5)
    assert completer.pending == 1

    restarted = asyncio.create_task(completer.run())  # the kept batch woke it already
    try:
        await wait_for(lambda: completer.pending == 0, message="the kept batch to be written")
    finally:
        completer.stop()
        await asyncio.wait_for(restarted, 5)
    assert (await fetch(store, job.id)).status is JobStatus.DONE


async def test_after_stop_run_returns_and_flush_all_writes_the_rest() -> None:
    store, told = WatchedStore(), Told()
    first, second = await running(store, 2)
    completer = told.completer(store)
    runner = asyncio.create_task(completer.run())
    completer.stop()
    await asyncio.wait_for(runner, 5)
    completer.add_completion(completion(first))
    completer.add_failure(failure(second))
    assert completer.pending == 2  # run has returned: nothing writes them by itself

    await completer.flush_all()

    assert completer.pending == 0
    assert (await fetch(store, first.id)).status is JobStatus.DONE
    assert (await fetch(store, second.id)).status is JobStatus.FAILED
