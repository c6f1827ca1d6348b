"""A queue runtime on its own (no Service): claiming up to its concurrency,
the bound on unwritten outcomes, the heartbeat, stopping runs, draining.

Built as the service builds one: a memory store, a fake clock, an executor
over a task registry, a supervisor. Real time only drives the loops (the
heartbeat beats every lease / 3); every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest

from servcore.jobs import Job, JobStatus
from servcore.retry import Backoff
from servcore.runtime.executor import Executor
from servcore.runtime.queue import QueueRuntime
from servcore.store.base import ClaimParams, StoreError
from servcore.supervisor import Health, Supervisor
from servcore.tasks import Retry, TaskRegistry, cancel_requested
from servcore.testing import FakeClock
from tests.conformance.support import fetch, new_job
from tests.conftest import wait_for
from tests.unit.parts import T0, WatchedStore

NODE = "unit-node"


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="unit-handler")
    yield pool
    pool.shutdown(wait=True)


class Rig:
    """One queue runtime and what it is built from."""

    def __init__(
        self,
        threads: ThreadPoolExecutor,
        *,
        concurrency: int = 2,
        lease: float = 30.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.store = WatchedStore()
        self.clock = FakeClock(T0)
        self.registry = TaskRegistry()
        self.health = Health()
        self.supervisor = Supervisor(self.health, expected=(StoreError,))
        executor = Executor(self.registry, self.clock, threads, Backoff(base=1, jitter=0))
        self.runtime = QueueRuntime(
            "default",
            store=self.store,
            executor=executor,
            clock=self.clock,
            node=NODE,
            concurrency=concurrency,
            lease=lease,
            poll_interval=poll_interval,
        )
        self.store.watch = lambda: len(self.runtime.recording)

    async def insert(
        self, task: str, count: int = 1, *, run_at: datetime = T0, max_attempts: int = 3
    ) -> list[Job]:
        jobs = [new_job(task=task, run_at=run_at, max_attempts=max_attempts) for _ in range(count)]
        return await self.store.insert_jobs(jobs, self.clock.now())

    async def statuses(self, jobs: list[Job]) -> list[JobStatus]:
        return [(await fetch(self.store, job.id)).status for job in jobs]

    async def all_done(self, jobs: list[Job]) -> bool:
        return await self.statuses(jobs) == [JobStatus.DONE] * len(jobs)

    @asynccontextmanager
    async def started(self) -> AsyncIterator[QueueRuntime]:
        self.runtime.start(self.supervisor)
        try:
            yield self.runtime
        finally:
            self.store.complete_gate.set()
            await self.runtime.stop_claiming()
            await self.runtime.drain(0)
            await self.supervisor.stop()


class Held:
    """An async handler that runs until let go, or until its run is cancelled."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.running = 0
        self.most = 0  # the most runs at once
        self.release = asyncio.Event()

    async def __call__(self, job: Job) -> int:
        self.started.append(job.id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(job.id)
            raise
        finally:
            self.running -= 1
        return job.id


async def quick(job: Job) -> str:
    return "quick"


# -- claiming -------------------------------------------------------------


async def test_claims_no_more_jobs_than_its_concurrency(threads: ThreadPoolExecutor) -> None:
    rig = Rig(threads, concurrency=2)
    held = Held()
    rig.registry.register("held", held)
    jobs = await rig.insert("held", 5)

    async with rig.started() as runtime:
        await wait_for(lambda: len(held.started) == 2, message="two runs")
        assert len(runtime.in_flight) == 2
        assert (await rig.store.count_jobs(rig.clock.now())).running == 2
        assert await runtime.claim_once(rig.clock.now()) == []  # no free slot

        held.release.set()
        await wait_for(lambda: rig.all_done(jobs), message="every job done")

    assert held.most == 2
    assert runtime.executed == 5
    # Until it knows how long runs take, it claims only for free slots.
    assert rig.store.claims[0][0] == 2
    assert [(await fetch(rig.store, job.id)).result for job in jobs] == [job.id for job in jobs]


async def test_run_once_runs_what_is_due_up_to_the_concurrency_and_records_it(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=2)
    rig.registry.register("quick", quick)
    due = await rig.insert("quick", 3)
    [later] = await rig.insert("quick", run_at=T0 + timedelta(seconds=60))
    runtime = rig.runtime

    assert await runtime.run_once(rig.clock.now()) == 2
    assert await rig.statuses(due) == [JobStatus.DONE, JobStatus.DONE, JobStatus.QUEUED]
    assert (runtime.in_flight, runtime.recording, runtime.completer.pending) == ({}, {}, 0)
    assert await runtime.run_once(rig.clock.now()) == 1
    assert await runtime.run_once(rig.clock.now()) == 0

    rig.clock.advance(60)
    assert await runtime.run_once(rig.clock.now()) == 1
    assert (await fetch(rig.store, later.id)).result == "quick"


async def test_a_notified_submission_is_claimed_without_waiting_for_the_poll(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, poll_interval=60)
    rig.registry.register("quick", quick)

    async with rig.started() as runtime:
        await wait_for(lambda: len(rig.store.claims) == 1, message="the first, empty claim")
        jobs = await rig.insert("quick")
        runtime.notify()
        await wait_for(lambda: rig.all_done(jobs), within=5, message="the job done")


async def test_a_retry_is_claimed_again_without_waiting_for_the_poll(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=1, poll_interval=60)

    @rig.registry.task("again")
    async def again(job: Job) -> int:
        if job.attempt == 1:
            raise Retry(after=0, reason="once more")
        return job.attempt

    jobs = await rig.insert("again")
    async with rig.started():
        await wait_for(lambda: rig.all_done(jobs), within=5, message="the second attempt")

    done = await fetch(rig.store, jobs[0].id)
    assert (done.result, [error.error for error in done.errors]) == (2, ["once more"])


def test_the_recording_limit_grows_with_the_concurrency(threads: ThreadPoolExecutor) -> None:
    assert Rig(threads, concurrency=2).runtime.recording_limit == 64
    assert Rig(threads, concurrency=100).runtime.recording_limit == 200


async def test_stops_claiming_at_the_recording_limit_until_outcomes_are_written(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=2)
    rig.registry.register("quick", quick)
    runtime = rig.runtime
    runtime.recording_limit = 3
    jobs = await rig.insert("quick", 6)
    rig.store.complete_gate.clear()  # the store falls behind

    async with rig.started():
        await wait_for(
            lambda: len(runtime.recording) >= 3 and not runtime.in_flight,
            message="the limit reached and every claimed job run",
        )
        assert await runtime.claim_once(rig.clock.now()) == []
        unwritten = len(runtime.recording)
        counts = await rig.store.count_jobs(rig.clock.now())
        assert (counts.running, counts.queued) == (unwritten, 6 - unwritten)
        # Held: still this node's (the rescuer spares them).
        assert sorted(runtime.held()) == [job.id for job in jobs[:unwritten]]

        rig.store.complete_gate.set()
        await wait_for(lambda: rig.all_done(jobs), message="every job done")
        assert runtime.recording == {}

    # Every claim was asked for with fewer unwritten outcomes than the limit.
    assert all(recording < 3 for _, recording in rig.store.claims)


async def test_a_handler_that_raises_cancelled_error_itself_fails_its_job(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads)

    @rig.registry.task("cancels_itself")
    async def cancels_itself(job: Job) -> None:
        raise asyncio.CancelledError

    jobs = await rig.insert("cancels_itself", max_attempts=1)
    async with rig.started():
        await wait_for(
            lambda: _status_is(rig, jobs[0], JobStatus.FAILED), message="the job to fail"
        )

    failed = await fetch(rig.store, jobs[0].id)
    assert failed.errors[-1].error == "RuntimeError: the handler was cancelled"


async def _status_is(rig: Rig, job: Job, status: JobStatus) -> bool:
    return (await fetch(rig.store, job.id)).status is status


# -- leases -----------------------------------------------------------------


async def test_the_heartbeat_renews_leases_of_running_and_recording_jobs(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=2, lease=0.06)  # a beat every 20 ms
    held = Held()
    rig.registry.register("held", held)
    rig.registry.register("quick", quick)
    [running] = await rig.insert("held")
    [recording] = await rig.insert("quick")
    rig.store.complete_gate.clear()
    runtime = rig.runtime

    async with rig.started():
        await wait_for(
            lambda: bool(held.started) and len(runtime.recording) == 1,
            message="one job running, one outcome unwritten",
        )
        rig.clock.advance(1000)
        renewed = rig.clock.now() + timedelta(seconds=0.06)

        async def both_renewed() -> bool:
            jobs = [await fetch(rig.store, job.id) for job in (running, recording)]
            return all(job.locked_until == renewed for job in jobs)

        await wait_for(both_renewed, message="both leases renewed")
        held.release.set()
        rig.store.complete_gate.set()
        await wait_for(lambda: rig.all_done([running, recording]), message="both done")


async def test_the_heartbeat_stops_a_run_whose_job_was_cancelled(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=1, lease=0.06)
    held = Held()
    rig.registry.register("held", held)
    rig.registry.register("quick", quick)
    [cancelled] = await rig.insert("held")
    after = await rig.insert("quick")
    runtime = rig.runtime

    async with rig.started():
        await wait_for(lambda: held.started == [cancelled.id], message="the run")
        # Cancelled in the store, with no word to this runtime.
        await rig.store.cancel_jobs([cancelled.id], rig.clock.now())
        await wait_for(lambda: held.cancelled == [cancelled.id], message="the run stopped")
        await wait_for(lambda: rig.all_done(after), message="the slot to be used again")

    job = await fetch(rig.store, cancelled.id)
    assert (job.status, job.result) == (JobStatus.CANCELLED, None)
    assert runtime.executed == 1
    assert all(cancelled.id not in ids for _, ids in rig.store.writes)


async def test_the_heartbeat_stops_a_run_whose_job_was_rescued_elsewhere(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=1, lease=0.06)
    held = Held()
    rig.registry.register("held", held)
    [job] = await rig.insert("held")
    runtime = rig.runtime

    async with rig.started():
        await wait_for(lambda: held.started == [job.id], message="the run")
        # This node looked dead: the job was rescued and claimed by another.
        later = rig.clock.now() + timedelta(seconds=10)
        await rig.store.rescue_expired_leases(later, max_rescues=5)
        [taken] = await rig.store.claim_jobs(
            ClaimParams("default", 1, "other-node", later, later + timedelta(seconds=30))
        )
        await wait_for(lambda: held.cancelled == [job.id], message="the run stopped")
        await wait_for(lambda: not runtime.in_flight, message="the slot freed")

    now_held = await fetch(rig.store, job.id)
    assert (now_held.status, now_held.locked_by, now_held.lease_token) == (
        JobStatus.RUNNING,
        "other-node",
        taken.lease_token,
    )
    assert now_held.locked_until == later + timedelta(seconds=30)
    assert runtime.executed == 0
    assert rig.store.writes == []


# -- stopping runs ----------------------------------------------------------


async def test_stop_run_cancels_an_async_run_and_drops_its_outcome(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=1)
    held = Held()
    rig.registry.register("held", held)
    rig.registry.register("quick", quick)
    [job] = await rig.insert("held")
    after = await rig.insert("quick")

    async with rig.started() as runtime:
        await wait_for(lambda: held.started == [job.id], message="the run")
        claimed = await fetch(rig.store, job.id)
        assert runtime.stop_run(job.id, claimed.lease_token + 1, "cancelled") is False
        assert runtime.stop_run(job.id + 100, None, "cancelled") is False
        await rig.store.cancel_jobs([job.id], rig.clock.now())

        assert runtime.stop_run(job.id, claimed.lease_token, "the job was cancelled") is True
        await wait_for(lambda: held.cancelled == [job.id], message="the run cancelled")
        await wait_for(lambda: rig.all_done(after), message="the slot to be used again")
        assert runtime.stop_run(job.id, None, "cancelled") is False  # nothing left to stop

    assert (await fetch(rig.store, job.id)).status is JobStatus.CANCELLED
    assert runtime.executed == 1
    assert runtime.stale_outcomes == 0
    assert all(job.id not in ids for _, ids in rig.store.writes)


async def test_stop_run_tells_a_thread_handler_which_keeps_its_slot_until_it_returns(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=1)
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()

    @rig.registry.task("blocking")
    def blocking(job: Job) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.001)
        saw_cancel.set()
        release.wait(10)
        return "too late"

    rig.registry.register("quick", quick)
    [job] = await rig.insert("blocking")
    after = await rig.insert("quick")

    async with rig.started() as runtime:
        await wait_for(started.is_set, message="the thread run")
        await rig.store.cancel_jobs([job.id], rig.clock.now())
        assert runtime.stop_run(job.id, None, "the job was cancelled") is True
        await wait_for(saw_cancel.is_set, message="the handler told")
        # The thread cannot be stopped: its slot stays taken until it returns.
        assert len(runtime.in_flight) == 1
        assert await rig.statuses(after) == [JobStatus.QUEUED]

        release.set()
        await wait_for(lambda: rig.all_done(after), message="the slot to be used again")

    stopped = await fetch(rig.store, job.id)
    assert (stopped.status, stopped.result) == (JobStatus.CANCELLED, None)
    assert runtime.executed == 1


# -- shutting down ----------------------------------------------------------


async def test_drain_returns_leftover_runs_to_the_queue_without_spending_an_attempt(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=2)
    held = Held()
    rig.registry.register("held", held)
    jobs = await rig.insert("held", 2)
    runtime = rig.runtime
    runtime.start(rig.supervisor)
    try:
        await wait_for(lambda: len(held.started) == 2, message="two runs")
        await runtime.stop_claiming()
        await runtime.drain(grace=0.05)
    finally:
        await rig.supervisor.stop()

    assert sorted(held.cancelled) == [job.id for job in jobs]
    assert runtime.in_flight == {}
    for job in jobs:
        released = await fetch(rig.store, job.id)
        assert (released.status, released.attempt, released.locked_by) == (
            JobStatus.QUEUED,
            0,
            None,
        )
        assert released.errors == ()
    again = await rig.store.claim_jobs(
        ClaimParams("default", 2, NODE, rig.clock.now(), rig.clock.now() + timedelta(minutes=1))
    )
    assert [job.attempt for job in again] == [1, 1]


async def test_drain_lets_runs_finish_within_the_grace_and_writes_their_outcomes(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=2)
    held = Held()
    rig.registry.register("held", held)
    jobs = await rig.insert("held", 2)
    runtime = rig.runtime
    runtime.start(rig.supervisor)
    try:
        await wait_for(lambda: len(held.started) == 2, message="two runs")
        await runtime.stop_claiming()
        draining = asyncio.create_task(runtime.drain(grace=30))
        held.release.set()
        await asyncio.wait_for(draining, 5)
    finally:
        await rig.supervisor.stop()

    assert held.cancelled == []
    assert await rig.all_done(jobs)
    assert (runtime.in_flight, runtime.recording, runtime.completer.pending) == ({}, {}, 0)


async def test_stop_claiming_returns_claimed_jobs_not_yet_started(
    threads: ThreadPoolExecutor,
) -> None:
    rig = Rig(threads, concurrency=3)
    rig.registry.register("quick", quick)
    jobs = await rig.insert("quick", 3)
    runtime = rig.runtime  # not started: no worker takes what is claimed

    assert len(await runtime.claim_once(rig.clock.now())) == 3
    await runtime.stop_claiming()

    assert runtime.in_flight == {}
    assert await rig.statuses(jobs) == [JobStatus.QUEUED] * 3
    assert [(await fetch(rig.store, job.id)).attempt for job in jobs] == [0, 0, 0]


def test_short_jobs_are_claimed_ahead_as_many_as_finish_during_a_claim() -> None:
    from servcore.runtime.queue import claim_capacity

    assert claim_capacity(8, None, 0.002) == 8  # nothing run yet: only free slots
    assert claim_capacity(8, 0.2, 0.002) == 8  # long jobs: only free slots
    assert claim_capacity(8, 0.001, 0.002) == 8 + 16  # two runs per slot per claim
    assert claim_capacity(8, 0.000_01, 0.002) == 8 + 64  # at most 8x the slots ahead
    assert claim_capacity(8, 0.001, 0.0) == 8  # claims cost nothing: no need
