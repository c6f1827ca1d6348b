"""Jobs running for real in a started service, on every backend."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from servcore import (
    Cancel,
    Discard,
    Job,
    JobStatus,
    Retry,
    Service,
    TaskRegistry,
    cancel_requested,
    raise_if_cancelled,
)
from servcore.job_requests import UniqueConflict
from servcore.store.base import ClaimParams
from tests import process_pool_tasks
from tests.conftest import finished, hanging, wait_for
from tests.processes import is_gone


async def test_async_and_sync_handlers_run_and_store_their_results(service: Service) -> None:
    threads: list[str] = []

    @service.task("double")
    async def double(job: Job) -> dict[str, int]:
        return {"value": job.payload["n"] * 2}

    @service.task("blocking")
    def blocking(job: Job) -> str:
        threads.append(threading.current_thread().name)
        time.sleep(0.01)  # a handler that blocks: it must not stall the loop
        return "slept"

    await service.start()
    first = await service.enqueue("double", {"n": 21})
    second = await service.enqueue("blocking")
    assert (await finished(service, first.id)).result == {"value": 42}
    done = await finished(service, second.id)
    assert done.result == "slept"
    assert threads
    assert threads[0].startswith("servcore-handler")
    assert done.status is JobStatus.DONE
    assert done.attempt == 1


async def test_unknown_task_gets_the_seed_default_result(service: Service) -> None:
    await service.start()
    job = await service.enqueue("nobody_handles_this")
    done = await finished(service, job.id)
    assert done.result["status"] == "completed"
    assert done.result["job_id"] == job.id
    assert done.result["processed_at"].endswith("Z")


async def test_failing_job_is_retried_with_backoff_then_failed(service: Service) -> None:
    attempts: list[float] = []

    @service.task("flaky")
    async def flaky(job: Job) -> None:
        attempts.append(time.monotonic())
        raise ValueError(f"broken on attempt {job.attempt}")

    await service.start()
    job = await service.enqueue("flaky", max_attempts=3, backoff=0.1)
    failed = await finished(service, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.attempt == 3
    assert [error.attempt for error in failed.errors] == [1, 2, 3]
    assert failed.errors[0].error == "ValueError: broken on attempt 1"
    assert failed.errors[0].traceback
    assert "raise ValueError" in failed.errors[0].traceback
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # base 0.1 s, factor 2, jitter ±10 %: about 0.1 s, then about 0.2 s.
    assert gaps[0] >= 0.085
    assert gaps[1] >= 0.17


async def test_retry_after_asks_for_a_delay_and_counts_an_attempt(service: Service) -> None:
    starts: list[float] = []

    @service.task("later")
    async def later(job: Job) -> str:
        starts.append(time.monotonic())
        if job.attempt == 1:
            raise Retry(after=0.2, reason="not yet")
        return "now"

    await service.start()
    job = await service.enqueue("later")
    done = await finished(service, job.id)
    assert done.result == "now"
    assert done.attempt == 2
    assert done.errors[0].error == "not yet"
    assert starts[1] - starts[0] >= 0.19


async def test_discard_fails_at_once_and_cancel_ends_cancelled(service: Service) -> None:
    @service.task("discard")
    async def discard(job: Job) -> None:
        raise Discard("bad input, no point retrying")

    @service.task("cancel")
    async def cancel(job: Job) -> None:
        raise Cancel("nothing to do")

    await service.start()
    discarded = await finished(service, (await service.enqueue("discard", max_attempts=5)).id)
    assert discarded.status is JobStatus.FAILED
    assert discarded.attempt == 1
    assert discarded.errors[-1].error == "bad input, no point retrying"
    cancelled = await finished(service, (await service.enqueue("cancel")).id)
    assert cancelled.status is JobStatus.CANCELLED


async def test_timeouts_fail_async_and_thread_handlers(service: Service) -> None:
    release = threading.Event()

    @service.task("hangs")
    async def hangs(job: Job) -> None:
        await asyncio.sleep(30)

    @service.task("blocks", timeout=0.1)
    def blocks(job: Job) -> None:
        release.wait(5)

    await service.start()
    hung = await service.enqueue("hangs", timeout=0.1, max_attempts=1)
    blocked = await service.enqueue("blocks", max_attempts=1)
    assert (await finished(service, hung.id)).errors[-1].error == "timed out after 0.1 s"
    assert (await finished(service, blocked.id)).errors[-1].error == "timed out after 0.1 s"
    release.set()


async def test_unserialisable_result_fails_only_that_job(service: Service) -> None:
    @service.task("weird")
    async def weird(job: Job) -> Any:
        return {"handle": object()}

    @service.task("anything")
    async def anything(job: Job) -> None:
        return None

    await service.start()
    job = await service.enqueue("weird")
    failed = await finished(service, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.attempt == 1
    assert "not JSON-serialisable" in failed.errors[-1].error
    ok = await service.enqueue("anything")
    assert (await finished(service, ok.id)).status is JobStatus.DONE


async def test_scheduled_job_starts_not_early_and_promptly(service: Service) -> None:
    await service.start()
    run_at = service.clock.now() + timedelta(seconds=0.4)
    job = await service.enqueue("timed", run_at=run_at)
    assert job.is_scheduled(service.clock.now())
    done = await finished(service, job.id)
    assert done.started_at is not None
    assert done.started_at >= run_at
    assert done.started_at - run_at < timedelta(seconds=0.15)


async def test_concurrency_limit_is_respected(service: Service) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    @service.task("hold")
    async def hold(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    service.configure(concurrency=2)
    await service.start()
    jobs = [await service.enqueue("hold") for _ in range(6)]
    await wait_for(lambda: running == 2, message="two jobs running")
    counts = await service.count_jobs()
    assert counts.running == 2
    assert counts.queued == 4
    gate.set()
    for job in jobs:
        await finished(service, job.id)
    assert peak == 2


async def test_graceful_stop_requeues_overrunning_jobs_without_spending_an_attempt(
    service: Service,
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @service.task("long")
    async def long(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @service.task("short")
    async def short(job: Job) -> str:
        await asyncio.sleep(0.05)
        return "made it"

    await service.start()
    long_job = await service.enqueue("long")
    await asyncio.wait_for(started.wait(), 5)
    short_job = await service.enqueue("short")
    await wait_for(lambda: len(service.runtimes["default"].in_flight) == 2, message="both running")
    store = service.store
    await service.stop(grace=0.5)
    assert cancelled.is_set()
    await store.open()
    requeued = await store.get_job(long_job.id)
    assert requeued is not None
    assert requeued.status is JobStatus.QUEUED
    assert requeued.attempt == 0
    assert requeued.locked_by is None
    finished_short = await store.get_job(short_job.id)
    assert finished_short is not None
    assert finished_short.result == "made it"
    await store.close()


async def test_a_late_completion_after_a_rescue_lands_while_nothing_ran_the_job_since(
    service: Service,
) -> None:
    release = asyncio.Event()

    @service.task("slow")
    async def slow(job: Job) -> str:
        await release.wait()
        return f"run with token {job.lease_token}"

    service.configure(concurrency=1)
    await service.start()
    job = await service.enqueue("slow")
    await wait_for(lambda: bool(service.runtimes["default"].in_flight), message="job running")
    await service.pause_queue("default")  # nothing may run it again meanwhile
    # Its lease is treated as expired (as if this node had stalled): rescued.
    future = service.clock.now() + timedelta(hours=1)
    report = await service.store.rescue_expired_leases(future, max_rescues=3)
    assert report.requeued == [job.id]
    release.set()
    # The run was alive after all: its outcome is taken, and the rescue not counted.
    done = await finished(service, job.id)
    assert (done.result, done.attempt, done.rescued) == ("run with token 1", 1, 0)
    assert "node lost" in done.errors[0].error
    assert service.node.stale_outcomes == 0


async def test_a_crashing_claim_loop_is_restarted_and_reported(service: Service) -> None:
    real_claim = service.store.claim_jobs
    healed = False

    async def broken_claim(params: Any) -> list[Job]:
        if not healed:
            raise RuntimeError("store hiccup")
        return await real_claim(params)

    service.store.claim_jobs = broken_claim  # type: ignore[method-assign]
    await service.start()
    await wait_for(
        lambda: service.problems().get("queue default") == "RuntimeError: store hiccup",
        message="the crash to show in health",
    )
    job = await service.enqueue("after_the_hiccup")
    await wait_for(
        lambda: service.node.supervisor.restarts["queue default"] >= 2, message="restarts"
    )
    healed = True
    assert (await finished(service, job.id)).status is JobStatus.DONE
    await wait_for(lambda: not service.problems(), message="health to recover")


async def test_leases_of_long_jobs_are_renewed(service: Service) -> None:
    release = asyncio.Event()

    @service.task("long")
    async def long(job: Job) -> str:
        await release.wait()
        return "finished"

    service.configure(lease=0.3, rescue_interval=0.05)
    await service.start()
    job = await service.enqueue("long")
    await wait_for(lambda: bool(service.runtimes["default"].in_flight), message="job running")
    first = await service.get_job(job.id)
    await wait_for(
        lambda: _later_lease(service, job.id, first), message="lease renewed by the heartbeat"
    )
    release.set()
    done = await finished(service, job.id)
    # It ran past its first lease's end and was never rescued.
    assert done.rescued == 0
    assert done.result == "finished"


async def _later_lease(service: Service, job_id: int, first: Job | None) -> bool:
    assert first is not None
    assert first.locked_until is not None
    current = await service.get_job(job_id)
    assert current is not None
    return current.locked_until is not None and current.locked_until > first.locked_until + (
        timedelta(seconds=0.25)
    )


async def test_a_task_bound_to_its_own_queue_runs_there(service: Service) -> None:
    @service.task("transcode", queue="media")
    async def transcode(job: Job) -> str:
        return job.queue

    await service.start()
    assert set(service.runtimes) == {"default", "media"}
    job = await service.enqueue("transcode")
    assert job.queue == "media"
    assert (await finished(service, job.id)).result == "media"


async def test_enqueue_with_a_unique_key_returns_the_earlier_job_or_raises(
    service: Service,
) -> None:
    await service.start(workers=False)
    first = await service.enqueue("report", {"day": 1}, unique_key="report-1")
    again = await service.enqueue("report", {"day": 1}, unique_key="report-1")
    assert again.id == first.id
    with pytest.raises(UniqueConflict, match="already used by job"):
        await service.enqueue("report", {"day": 2}, unique_key="report-1")


async def test_a_node_pinned_to_queues_runs_only_those(service: Service) -> None:
    @service.task("transcode", queue="video")
    async def transcode(job: Job) -> str:
        return "transcoded"

    @service.task("render", queue="pdf")
    async def render(job: Job) -> str:
        return "rendered"

    service.configure(queues=("video",))
    await service.start()
    assert set(service.runtimes) == {"video"}
    video = await service.enqueue("transcode")
    pdf = await service.enqueue("render")
    assert (await finished(service, video.id)).result == "transcoded"
    held = await service.get_job(pdf.id)
    assert held is not None
    assert held.status is JobStatus.QUEUED  # waits for a node that runs "pdf"


async def test_a_running_async_job_is_cancelled_and_its_slot_freed(service: Service) -> None:
    started = asyncio.Event()
    cleaned_up = asyncio.Event()

    @service.task("forever")
    async def forever(job: Job) -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()
        return "never"

    @service.task("quick")
    async def quick(job: Job) -> None:
        return None

    service.configure(concurrency=1)
    await service.start()
    job = await service.enqueue("forever")
    await asyncio.wait_for(started.wait(), 10)
    cancelled = await service.cancel_job(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    await asyncio.wait_for(cleaned_up.wait(), 10)  # the handler really was cancelled
    # The one slot is free again, and the stopped run recorded nothing over the cancel.
    after = await service.enqueue("quick")
    assert (await finished(service, after.id)).status is JobStatus.DONE
    final = await service.get_job(job.id)
    assert final is not None
    assert final.status is JobStatus.CANCELLED
    assert final.errors == ()
    assert service.runtimes["default"].stale_outcomes == 0


async def test_a_running_thread_job_is_told_and_stops_at_its_next_check(service: Service) -> None:
    started = threading.Event()
    checks: list[bool] = []

    @service.task("polite")
    def polite(job: Job) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            checks.append(cancel_requested())
            raise_if_cancelled()
            time.sleep(0.005)
        return "ran to the end"

    await service.start()
    job = await service.enqueue("polite")
    await asyncio.to_thread(started.wait, 10)
    await service.cancel_job(job.id)
    runtime = service.runtimes["default"]
    await wait_for(lambda: not runtime.in_flight, message="the thread to stop")
    assert checks[-1] is True
    final = await service.get_job(job.id)
    assert final is not None
    assert final.status is JobStatus.CANCELLED
    assert final.result is None


async def test_a_thread_handler_is_told_when_it_overruns_its_timeout(service: Service) -> None:
    stopped = threading.Event()

    @service.task("slow", timeout=0.1)
    def slow(job: Job) -> None:
        deadline = time.monotonic() + 10
        while not cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.005)
        if cancel_requested():
            stopped.set()

    await service.start()
    job = await service.enqueue("slow", max_attempts=1)
    assert (await finished(service, job.id)).errors[-1].error == "timed out after 0.1 s"
    assert await asyncio.to_thread(stopped.wait, 10)


async def test_a_cancelled_job_that_was_claimed_but_not_started_never_runs(
    service: Service,
) -> None:
    release = asyncio.Event()
    ran: list[int] = []

    @service.task("gate")
    async def gate(job: Job) -> None:
        ran.append(job.id)
        await release.wait()

    service.configure(concurrency=1)
    await service.start()
    first = await service.enqueue("gate")
    await wait_for(lambda: ran == [first.id], message="the first job to start")
    runtime = service.runtimes["default"]
    await service.enqueue("gate", run_at=service.clock.now() + timedelta(hours=1))
    # Claimed into the ready list behind the busy slot, as a busier queue would.
    later = service.clock.now() + timedelta(hours=2)
    (second,) = await service.store.claim_jobs(
        ClaimParams("default", 1, "test-node", later, later + timedelta(hours=1))
    )
    runtime.in_flight[(second.id, second.lease_token)] = second
    runtime._ready.put_nowait(second)
    cancelled = await service.cancel_job(second.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    release.set()
    await wait_for(lambda: not runtime.in_flight, message="the queue to empty")
    assert ran == [first.id]


async def test_a_run_cancelled_by_another_process_stops_by_its_heartbeat(service: Service) -> None:
    hang = hanging(service)
    service.configure(lease=0.6)
    await service.start()
    job = await service.enqueue("hangs")
    await asyncio.wait_for(hang.started.wait(), 10)
    # Straight to the store, as another process sharing it would (PostgreSQL
    # also notifies; on the others the lease renewal finds the job is gone).
    assert await service.store.cancel_jobs([job.id], service.clock.now()) == [job.id]
    await asyncio.wait_for(hang.stopped.wait(), 5)
    await wait_for(lambda: not service.runtimes["default"].in_flight, message="slot freed")


async def test_process_tasks_run_in_worker_processes_and_timeouts_kill_them(
    service: Service, tmp_path: Path
) -> None:
    service.registry.register("echo", process_pool_tasks.echo, executor="process")
    service.registry.register("spin", process_pool_tasks.spin, executor="process", timeout=1)
    service.registry.register("retry", process_pool_tasks.retry, executor="process")
    service.configure(processes=2)
    await service.start()
    echoed = await service.enqueue("echo", {"n": 7})
    pid_file = tmp_path / "spin.pid"
    spinning = await service.enqueue("spin", {"pid_file": str(pid_file)}, max_attempts=1)
    retried = await service.enqueue("retry", max_attempts=1)

    done = await finished(service, echoed.id)
    assert done.status is JobStatus.DONE
    assert done.result["payload"] == {"task": "echo", "n": 7}
    assert done.result["pid"] != os.getpid()
    timed_out = await finished(service, spinning.id)
    assert timed_out.errors[-1].error == "timed out after 1 s"
    pid = int(pid_file.read_text())
    await wait_for(lambda: is_gone(pid), message="the spinning process to be killed")
    assert (await finished(service, retried.id)).errors[-1].error == "not yet"


async def test_cancelling_a_running_process_task_kills_its_process(
    service: Service, tmp_path: Path
) -> None:
    service.registry.register("block", process_pool_tasks.block, executor="process")
    service.configure(processes=1)
    await service.start()
    pid_file = tmp_path / "block.pid"
    job = await service.enqueue("block", {"pid_file": str(pid_file)})
    await wait_for(pid_file.exists, message="the process task to start", within=30)
    pid = int(pid_file.read_text())
    cancelled = await service.cancel_job(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    await wait_for(lambda: is_gone(pid), message="the blocked process to be killed")
    # The pool carries on with a fresh process.
    service.registry.register("echo", process_pool_tasks.echo, executor="process")
    after = await service.enqueue("echo")
    assert (await finished(service, after.id)).result["pid"] != pid


def test_process_tasks_must_be_plain_module_level_functions() -> None:
    registry = TaskRegistry()

    async def coroutine(job: Job) -> None: ...

    with pytest.raises(ValueError, match="async def handler runs on the event loop"):
        registry.register("a", coroutine, executor="process")
    with pytest.raises(ValueError, match="module-level function"):
        registry.register("b", lambda job: None, executor="process")
    with pytest.raises(ValueError, match="executor must be"):
        registry.register("c", process_pool_tasks.echo, executor="gpu")  # type: ignore[arg-type]
    assert registry.register("d", process_pool_tasks.echo, executor="process").executor == (
        "process"
    )


async def test_a_job_retried_while_its_stopped_thread_still_runs_runs_again_cleanly(
    service: Service,
) -> None:
    release = threading.Event()
    runs: list[int] = []

    @service.task("stubborn")
    def stubborn(job: Job) -> str:
        runs.append(job.lease_token)
        if len(runs) == 1:
            release.wait(10)  # never looks at cancel_requested()
            return "first"
        return "second"

    service.configure(concurrency=2)
    await service.start()
    job = await service.enqueue("stubborn")
    await wait_for(lambda: len(runs) == 1, message="the first run to start")
    await service.cancel_job(job.id)
    await service.retry_job(job.id)
    done = await finished(service, job.id)
    assert (done.status, done.result) == (JobStatus.DONE, "second")
    assert runs == [1, 2]
    release.set()
    runtime = service.runtimes["default"]
    await wait_for(lambda: not runtime.in_flight, message="the first run to wind down")
    assert all(not worker.done() for worker in runtime._workers)  # no slot lost
    assert (await service.get_job(job.id)) == done  # the late "first" changed nothing


async def test_a_cancel_that_overtakes_its_claim_still_stops_the_run(service: Service) -> None:
    ran: list[int] = []

    @service.task("late")
    async def late(job: Job) -> None:
        ran.append(job.id)

    await service.start()
    runtime = service.runtimes["default"]
    job = await service.enqueue("late", run_at=service.clock.now() + timedelta(hours=1))
    later = service.clock.now() + timedelta(hours=2)
    (claimed,) = await service.store.claim_jobs(
        ClaimParams("default", 1, "test-node", later, later + timedelta(hours=1))
    )
    # The cancel (and its notification) arrive before the claim's reply does.
    await service.store.cancel_jobs([job.id], service.clock.now())
    service.node.stop_run(job.id, claimed.lease_token)
    runtime.take([claimed])
    await wait_for(lambda: not runtime.in_flight, message="the claim to be dropped")
    assert ran == []
    # A retry is a new claim: it runs.
    await service.retry_job(job.id)
    await finished(service, job.id)
    assert ran == [job.id]


async def test_a_bulk_cancel_stops_the_runs_here(service: Service) -> None:
    hang = hanging(service)
    await service.start()
    job = await service.enqueue("hangs")
    await asyncio.wait_for(hang.started.wait(), 10)
    assert await service.cancel_jobs([job.id]) == [job.id]
    await asyncio.wait_for(hang.stopped.wait(), 5)


async def test_outcomes_waiting_for_the_store_stay_held_and_bound_the_claims(
    service: Service,
) -> None:
    store_back = asyncio.Event()
    real_complete = service.store.complete_jobs

    async def slow_complete(completions: Any) -> list[int]:
        await store_back.wait()  # the store falls behind (issue 10: a stuck statement)
        return await real_complete(completions)

    service.store.complete_jobs = slow_complete  # type: ignore[method-assign]
    service.configure(concurrency=2, lease=0.3, rescue_interval=0.05)
    await service.start()
    runtime = service.runtimes["default"]
    jobs = await service.enqueue_many([service.build_job({"task": "noop"}) for _ in range(150)])
    limit = runtime.recording_limit
    await wait_for(
        lambda: len(runtime.recording) >= limit and not runtime.in_flight,
        message="claims to stop at the bound",
    )
    # No more than the bound (and the jobs already held) was taken from the queue.
    assert len(runtime.recording) <= limit + runtime.most_capacity
    waiting = next(iter(runtime.recording.values()))
    first = await service.get_job(waiting.id)
    # Past its first lease: renewed all along, and never rescued by this node.
    await wait_for(lambda: _later_lease(service, waiting.id, first), message="lease renewed")
    assert service.node.rescuer.rescued == 0
    counts = await service.count_jobs()
    assert counts.queued >= len(jobs) - limit - runtime.most_capacity

    store_back.set()
    for job in jobs:
        done = await finished(service, job.id)
        assert (done.status, done.attempt, done.rescued) == (JobStatus.DONE, 1, 0)
    assert service.node.stale_outcomes == 0
    assert not runtime.recording
