"""Shared vocabulary for the conformance suite: a fixed clock, job builders, claims.

Every store call gets an explicit, aware-UTC ``now`` so the suite is
deterministic and never sleeps. Claims go through :func:`claim`, which first
announces the node (``register_node``), as the runtime does: a backend may
treat jobs of an unannounced node as orphaned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from servcore.jobs import Job, JobError, NewJob
from servcore.store.base import ClaimParams, Completion, Failure, Lease, Store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NODE = "node-a"
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    """``T0`` shifted by ``seconds`` (negative for the past)."""
    return T0 + timedelta(seconds=seconds)


def new_job(
    queue: str = "default",
    *,
    run_at: datetime = T0,
    priority: int = 0,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 3,
    task: str = "work",
    unique_key: str | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    result_ttl: float | None = None,
) -> NewJob:
    return NewJob(
        payload={"task": task} if payload is None else payload,
        run_at=run_at,
        queue=queue,
        task=task,
        priority=priority,
        max_attempts=max_attempts,
        unique_key=unique_key,
        timeout=timeout,
        backoff=backoff,
        result_ttl=result_ttl,
    )


async def insert(store: Store, *new_jobs: NewJob, now: datetime = T0) -> list[Job]:
    return await store.insert_jobs(list(new_jobs), now)


async def claim(
    store: Store,
    queue: str = "default",
    *,
    limit: int = 100,
    now: datetime = T0,
    node: str = NODE,
    lease: timedelta = LEASE,
) -> list[Job]:
    await store.register_node(node)
    return await store.claim_jobs(ClaimParams(queue, limit, node, now, now + lease))


async def claim_one(store: Store, queue: str = "default", *, now: datetime = T0) -> Job:
    claimed = await claim(store, queue, limit=1, now=now)
    assert len(claimed) == 1, f"expected one due job in {queue!r} at {now}, got {claimed}"
    return claimed[0]


async def fetch(store: Store, job_id: int) -> Job:
    job = await store.get_job(job_id)
    assert job is not None, f"job {job_id} is missing"
    return job


def lease_of(job: Job) -> Lease:
    return Lease(job.id, job.lease_token)


def completion(job: Job, *, result: Any = None, finished_at: datetime = T0) -> Completion:
    return Completion(job.id, job.lease_token, finished_at, result)


def failure(
    job: Job,
    *,
    at_time: datetime = T0,
    retry_at: datetime | None = None,
    cancel: bool = False,
    message: str = "boom",
    traceback: str | None = None,
) -> Failure:
    error = JobError(job.attempt, at_time, message, traceback, job.started_at)
    return Failure(job.id, job.lease_token, error, retry_at, cancel)
