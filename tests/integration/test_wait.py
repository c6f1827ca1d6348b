"""service.wait and service.run, on every backend (the waiter in the process
that runs the job; see test_wait_processes.py for another process)."""

from __future__ import annotations

import asyncio
import time

import pytest

from servcore import Job, JobNotFound, JobStatus, Service
from servcore.notifier.waiters import FinishWaiters
from tests.conftest import hanging, wait_for


@pytest.fixture
def no_fallback_poll(service: Service) -> None:
    """Waiters read their job only when woken: only a notification can end a wait early."""
    service.configure(wait_poll_interval=600.0)


async def test_wait_returns_the_finished_job_as_soon_as_it_finishes(
    service: Service, no_fallback_poll: None
) -> None:
    gate = asyncio.Event()

    @service.task("gated")
    async def gated(job: Job) -> dict[str, int]:
        await gate.wait()
        return {"n": job.payload["n"] * 2}

    await service.start()
    job = await service.enqueue("gated", {"n": 21})
    waiting = asyncio.create_task(service.wait(job.id, timeout=30))
    await wait_for(lambda: len(service.node.finishes) == 1, message="the waiter to be registered")
    assert not waiting.done()
    gate.set()
    started = time.monotonic()
    finished = await waiting
    assert time.monotonic() - started < 10
    assert finished.status is JobStatus.DONE
    assert finished.result == {"n": 42}
    assert len(service.node.finishes) == 0  # a waiter that returned is forgotten


async def test_run_enqueues_and_returns_the_result(
    service: Service, no_fallback_poll: None
) -> None:
    @service.task("double")
    async def double(job: Job) -> int:
        return int(job.payload["n"]) * 2

    await service.start()
    done = await service.run("double", {"n": 4}, timeout=30, priority=3)
    assert (done.status, done.result, done.priority) == (JobStatus.DONE, 8, 3)


async def test_failed_and_cancelled_jobs_end_the_wait(
    service: Service, no_fallback_poll: None
) -> None:
    @service.task("explode")
    async def explode(job: Job) -> None:
        raise RuntimeError("kaboom")

    hang = hanging(service)
    await service.start()
    failed = await service.run("explode", timeout=30, max_attempts=1)
    assert failed.status is JobStatus.FAILED
    assert "kaboom" in failed.errors[-1].error
    running = await service.enqueue("hangs")
    waiting = asyncio.create_task(service.wait(running.id, timeout=30))
    await hang.started.wait()
    await service.cancel_job(running.id)
    assert (await waiting).status is JobStatus.CANCELLED


async def test_a_wait_that_runs_out_raises_timeout_error(service: Service) -> None:
    hang = hanging(service)
    await service.start()
    job = await service.enqueue("hangs")
    await hang.started.wait()
    with pytest.raises(TimeoutError, match=f"job {job.id} is still running after 0.3 s"):
        await service.wait(job.id, timeout=0.3)
    with pytest.raises(TimeoutError):
        await service.run("hangs", timeout=0.1)
    still = await service.get_job(job.id)
    assert still is not None
    assert still.status is JobStatus.RUNNING


async def test_unknown_and_expired_jobs_are_not_found(service: Service) -> None:
    @service.task("brief")
    async def brief(job: Job) -> str:
        return "gone soon"

    await service.start()
    with pytest.raises(JobNotFound, match="job 987654 does not exist"):
        await service.wait(987654, timeout=1)
    job = await service.run("brief", timeout=30, result_ttl=1)
    assert job.result == "gone soon"

    async def expired() -> bool:
        return await service.get_job(job.id) is None

    await wait_for(expired, within=15, message="the result to expire")
    with pytest.raises(LookupError):  # JobNotFound is one
        await service.wait(job.id, timeout=1)


async def test_many_waiters_on_one_job_are_woken_by_its_one_finish(
    service: Service, no_fallback_poll: None
) -> None:
    gate = asyncio.Event()

    @service.task("gated")
    async def gated(job: Job) -> str:
        await gate.wait()
        return "for everyone"

    warm_gate = asyncio.Event()

    @service.task("warm")
    async def warm(job: Job) -> None:
        await warm_gate.wait()

    await service.start()
    # Once one wait has been woken, the listener is in place: its first wake
    # (every waiter, when it starts listening) is behind us.
    warming = asyncio.create_task(service.run("warm", timeout=60))
    await wait_for(lambda: len(service.node.finishes) == 1, message="the warm-up waiter")
    warm_gate.set()
    await warming
    job = await service.enqueue("gated")
    waiters = [asyncio.create_task(service.wait(job.id, timeout=60)) for _ in range(300)]
    await wait_for(lambda: len(service.node.finishes) == 300, message="300 waiters")
    reads = 0
    read = service.store.get_job

    async def counted(job_id: int) -> Job | None:
        nonlocal reads
        reads += 1
        return await read(job_id)

    service.store.get_job = counted  # type: ignore[method-assign]
    gate.set()
    answers = await asyncio.wait_for(asyncio.gather(*waiters), 30)
    assert {answer.result for answer in answers} == {"for everyone"}
    # One read per waiter when woken: nobody polled while the job ran.
    assert reads <= 300


async def test_a_lost_notification_is_covered_by_the_fallback_poll(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()

    @service.task("gated")
    async def gated(job: Job) -> str:
        await gate.wait()
        return "late but seen"

    monkeypatch.setattr(FinishWaiters, "finished", lambda self, job_id: None)
    await service.start()
    job = await service.enqueue("gated")
    waiting = asyncio.create_task(service.wait(job.id, timeout=30))
    await wait_for(lambda: len(service.node.finishes) == 1, message="the waiter")
    gate.set()
    started = time.monotonic()
    assert (await waiting).result == "late but seen"
    assert time.monotonic() - started < 15  # the ~1 s fallback, with room for a loaded machine
