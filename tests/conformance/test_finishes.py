"""Every write that finishes a job is heard by the store's notifier, in the
process that wrote it too (what ``service.wait`` and ``GET /jobs/{id}?wait=``
are woken by); retries and releases are not finishes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from servcore.store.base import Store
from tests.conformance.support import (
    at,
    claim,
    completion,
    failure,
    insert,
    lease_of,
    new_job,
)


class Heard:
    def __init__(self) -> None:
        self.finished: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, job_id: int) -> None:
        self.finished.append(job_id)
        self.changed.set()

    async def until(self, job_id: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while job_id not in self.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"job {job_id}'s finish was not heard within {within} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.changed.wait()


@pytest.fixture
async def heard(store: Store) -> AsyncIterator[Heard]:
    notifier = store.notifier()
    assert notifier is not None
    heard = Heard()
    listening = asyncio.create_task(notifier.run(lambda _q: None, lambda _i, _t: None, heard))
    try:
        # Listening starts in the background: finish probe jobs until one is heard.
        deadline = time.monotonic() + 10
        while True:
            (probe,) = await insert(store, new_job("probe"))
            await store.cancel_jobs([probe.id], at(0))
            try:
                await heard.until(probe.id, within=0.2)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        yield heard
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_each_finishing_write_is_heard(store: Store, heard: Heard) -> None:
    done, failed, cancelled, waiting, lost = await insert(
        store, new_job(), new_job(), new_job(), new_job(run_at=at(60)), new_job(max_attempts=1)
    )
    first, second, third, fourth = await claim(store)
    assert {first.id, second.id, third.id, fourth.id} == {done.id, failed.id, cancelled.id, lost.id}
    await store.complete_jobs([completion(first, result={"ok": 1})])
    await store.fail_jobs([failure(second, retry_at=None)])
    await store.fail_jobs([failure(third, retry_at=None, cancel=True)])
    await store.cancel_jobs([waiting.id], at(1))
    report = await store.rescue_expired_leases(at(3600), 3)
    assert report.failed == [fourth.id]  # its one attempt is spent: failed, not requeued
    for job in (first, second, third, fourth, waiting):
        await heard.until(job.id)


async def test_retries_and_releases_are_not_finishes(store: Store, heard: Heard) -> None:
    retried, released, marker = await insert(store, new_job(), new_job(), new_job())
    first, second, third = await claim(store)
    await store.fail_jobs([failure(first, retry_at=at(5))])
    await store.release_jobs([lease_of(second)])
    await store.complete_jobs([completion(third)])
    await heard.until(marker.id)  # heard after what came before it
    assert retried.id not in heard.finished
    assert released.id not in heard.finished


async def test_a_batch_of_many_finishes_is_heard_whole(store: Store, heard: Heard) -> None:
    jobs = await insert(store, *[new_job() for _ in range(700)])
    claimed = await claim(store, limit=1000)
    await store.complete_jobs([completion(job) for job in claimed])
    for job in jobs:
        await heard.until(job.id)
