"""Faults inside handlers, the store and shutdown that must not wedge the service."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from servcore import Job, JobStatus, Retry, Service
from servcore.store import SqliteStore
from servcore.store.base import ClaimParams, StoreError
from tests.conftest import fast_config, make_store, wait_for
from tests.integration.test_runtime import finished


async def test_a_handler_raising_cancelled_error_fails_only_its_job(service: Service) -> None:
    @service.task("rogue")
    async def rogue(job: Job) -> None:
        raise asyncio.CancelledError

    @service.task("anything")
    async def anything(job: Job) -> None:
        return None

    service.configure(concurrency=1)
    await service.start()
    bad = await service.enqueue("rogue", max_attempts=1)
    failed = await finished(service, bad.id)
    assert failed.status is JobStatus.FAILED
    assert "the handler was cancelled" in failed.errors[-1].error
    # The only slot is free again: the next job runs.
    good = await service.enqueue("anything")
    assert (await finished(service, good.id)).status is JobStatus.DONE


async def test_stop_is_bounded_when_a_handler_swallows_cancellation(service: Service) -> None:
    started = asyncio.Event()

    @service.task("stubborn")
    async def stubborn(job: Job) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "ignored the cancel"
        return "slept"

    await service.start()
    await service.enqueue("stubborn")
    await asyncio.wait_for(started.wait(), 5)
    begun = time.monotonic()
    await asyncio.wait_for(service.stop(grace=0.1), 10)
    assert time.monotonic() - begun < 5
    assert not service.started


async def test_health_recovers_after_the_completer_and_heartbeat_fail_once(
    service: Service,
) -> None:
    store = service.store
    real_complete, real_extend = store.complete_jobs, store.extend_leases
    broken = {"complete": True, "extend": True}

    async def complete_once_broken(completions: Any) -> list[int]:
        if broken["complete"]:
            broken["complete"] = False
            raise StoreError("disk hiccup")
        return await real_complete(completions)

    async def extend_once_broken(leases: Any, until: Any) -> list[int]:
        if broken["extend"]:
            broken["extend"] = False
            raise StoreError("disk hiccup")
        return await real_extend(leases, until)

    store.complete_jobs = complete_once_broken  # type: ignore[method-assign]
    store.extend_leases = extend_once_broken  # type: ignore[method-assign]
    release = asyncio.Event()

    @service.task("slow")
    async def slow(job: Job) -> str:
        await release.wait()
        return "ok"

    service.configure(lease=0.3)
    await service.start()
    job = await service.enqueue("slow")
    await wait_for(lambda: not broken["extend"], message="the heartbeat to fail once")
    release.set()
    done = await finished(service, job.id)
    assert done.result == "ok"  # the outcome was kept and written on the retry
    assert not broken["complete"]
    await wait_for(lambda: not service.problems(), message="health to recover")


async def test_a_retry_starts_on_time_even_with_a_long_poll_interval(
    backend: str, tmp_path: Path
) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(poll_interval=30))
    starts: list[float] = []

    @service.task("again")
    async def again(job: Job) -> str:
        starts.append(time.monotonic())
        if job.attempt == 1:
            raise Retry(after=0.1)
        return "second time"

    await service.start()
    try:
        job = await service.enqueue("again")
        done = await finished(service, job.id)
        assert done.result == "second time"
        assert 0.09 <= starts[1] - starts[0] < 2
    finally:
        await service.stop(grace=0)


async def test_stop_finishes_even_when_jobs_cannot_be_returned(service: Service) -> None:
    started = asyncio.Event()

    @service.task("long")
    async def long(job: Job) -> None:
        started.set()
        await asyncio.sleep(30)

    async def unavailable(leases: Any) -> list[int]:
        raise StoreError("store gone")

    await service.start()
    await service.enqueue("long")
    await asyncio.wait_for(started.wait(), 5)
    service.store.release_jobs = unavailable  # type: ignore[method-assign]
    await asyncio.wait_for(service.stop(grace=0), 10)
    assert not service.started
    assert not service.runtimes


async def test_a_thread_job_still_running_at_shutdown_is_left_running(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    service = Service(SqliteStore(f"sqlite:///{path}", str(path)), config=fast_config())
    release = threading.Event()
    entered = threading.Event()

    @service.task("blocking")
    def blocking(job: Job) -> str:
        entered.set()
        release.wait(10)
        return "done late"

    await service.start()
    job = await service.enqueue("blocking")
    await wait_for(entered.is_set, message="the thread to start")
    await service.stop(grace=0.1)
    release.set()
    store = SqliteStore(f"sqlite:///{path}", str(path))
    await store.open()
    try:
        left = await store.get_job(job.id)
        assert left is not None
        assert left.status is JobStatus.RUNNING  # not requeued while its thread runs
    finally:
        await store.close()


async def test_a_restart_under_the_same_node_name_rescues_its_jobs_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    url = f"sqlite:///{path}"
    first = SqliteStore(url, str(path))
    await first.open()
    await first.register_node("fixed")
    service = Service(first, config=fast_config())
    job = (await first.insert_jobs([service.build_job({"task": "x"})], service.clock.now()))[0]
    now = service.clock.now()
    [claimed] = await first.claim_jobs(
        ClaimParams("default", 1, "fixed", now, now + timedelta(hours=1))
    )
    await first.close()  # the process is gone; its job is still "running"

    second = SqliteStore(url, str(path))
    await second.open()
    try:
        await second.register_node("fixed")
        report = await second.rescue_expired_leases(now, max_rescues=3)
        assert report.requeued == [claimed.id] == [job.id]
    finally:
        await second.close()


async def test_a_node_name_held_by_another_live_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first = SqliteStore(f"sqlite:///{path}", str(path))
    second = SqliteStore(f"sqlite:///{path}", str(path))
    await first.open()
    await second.open()
    try:
        await first.register_node("twin")
        with pytest.raises(StoreError, match="already in use"):
            await second.register_node("twin")
    finally:
        await first.close()
        await second.close()
