"""A claim that committed but whose answer never reached its node (the
connection dropped after COMMIT): the node notices at its next lease
renewal and puts the job back at once, without spending an attempt.

Before, such a job sat ``running`` until its lease ran out, and was then
rescued as if its node had died, its attempt counted and a "node lost"
error recorded, though it had never run.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from servcore import JobStatus, Service
from servcore.jobs import Job
from servcore.store import MemoryStore
from servcore.store.base import ClaimParams
from servcore.testing import FakeClock
from tests.conformance.support import new_job
from tests.conftest import fast_config, finished, make_store, wait_for

LEASE = 3.0  # renewed, and orphans looked for, every second


async def test_a_claim_that_never_reached_the_node_goes_back_at_once_with_no_attempt_spent(
    backend: str, tmp_path: Path
) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(node="n1", lease=LEASE))
    await service.start()
    try:
        store = service.store
        now = service.clock.now()
        [job] = await store.insert_jobs([new_job("elsewhere", run_at=now)], now)
        # Claimed in the store under this node's name, never handed to a runtime.
        [lost] = await store.claim_jobs(
            ClaimParams("elsewhere", 1, "n1", now, now + timedelta(seconds=LEASE))
        )
        claimed_at = time.monotonic()

        async def back_in_the_queue() -> bool:
            current = await service.get_job(job.id)
            return current is not None and current.status is JobStatus.QUEUED

        await wait_for(back_in_the_queue, within=LEASE + 10, message="the orphan's release")
        released_after = time.monotonic() - claimed_at
        back = await service.get_job(job.id)
        assert back is not None
        assert (back.attempt, back.errors, back.rescued) == (0, (), 0)
        assert (back.locked_by, back.started_at) == (None, None)
        # A lease renewal after the claim, not the rescue once the lease ran out
        # (the lease ran on the store's clock: the rescue comes LEASE after it).
        assert lost.locked_until is not None
        assert released_after < LEASE
    finally:
        await service.stop(grace=0)


class SlowAnswers(MemoryStore):
    """Commits a claim at once; answers it only when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = asyncio.Event()
        self.answer = asyncio.Event()

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        jobs = await super().claim_jobs(params)
        if jobs:
            self.committed.set()
            await self.answer.wait()
        return jobs


async def test_a_claim_still_on_its_way_is_not_taken_for_an_orphan() -> None:
    clock = FakeClock()
    store = SlowAnswers()
    service = Service(store, config=fast_config(node="n1", lease=LEASE), clock=clock)
    await service.start()
    try:
        job = await service.enqueue("anything")
        await asyncio.wait_for(store.committed.wait(), 10)
        clock.advance(60)  # long after the claim: still on its way, not lost

        assert await service.node.release_orphans(clock.now()) == []

        store.answer.set()
        done = await finished(service, job.id)
        assert (done.status, done.attempt) == (JobStatus.DONE, 1)
    finally:
        await service.stop(grace=0)
