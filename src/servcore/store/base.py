"""The store protocol: every state change of a job is one (batch) call here.

Leases and fencing
------------------
``claim_jobs`` hands each job to one worker with a lease: ``locked_by`` (the
node), ``locked_until`` (when the claim lapses unless extended) and a fresh
``lease_token`` (one more than the job's last). Every later write about that
run — complete, fail, release, extend — names the token it holds and only
takes effect while the job is still ``running`` with that same token. So when
a worker dies, ``rescue_expired_leases`` puts its jobs back in the queue, the
next claim bumps the token, and a late completion from the old run is refused
(its id is returned as *stale*) instead of overwriting the new run.

A job rescued more than ``max_rescues`` times is failed rather than requeued:
something in it keeps killing its worker (a poison pill).

Leadership and fencing
----------------------
The store also keeps the cluster's leader lease (``seek_leadership``): one
node at a time holds it, under a term that goes up each time it changes
hands or lapses. The leader-only writes — rescue sweeps, pruning, expiry,
cron ticks — take that term as ``fence`` and do nothing unless it is still
the current term, checked in the same statement or transaction as the
write. ``fence=None`` writes unconditionally (a node's own start-up rescue,
tests, tools).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from servcore.errors import ServcoreError
from servcore.job_reads import (
    FinishedTally,
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
)
from servcore.jobs import Job, JobError, NewJob
from servcore.leadership.base import LeaderTerm
from servcore.notifier.base import Notifier


class StoreError(ServcoreError):
    """The store could not do what was asked (unreachable, corrupt, closed)."""


class OutcomeUnknown(StoreError):
    """The connection was lost after a change was sent and before the store said
    whether it committed: the change may or may not have been made. Only a
    retry that the store can recognise (a job's ``unique_key``) is safe."""


@dataclass(frozen=True, slots=True)
class ClaimParams:
    queue: str
    limit: int
    node: str
    now: datetime
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """The claim a worker holds on a running job."""

    id: int
    lease_token: int


@dataclass(frozen=True, slots=True)
class Completion:
    id: int
    lease_token: int
    finished_at: datetime
    result: Any


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that did not succeed.

    ``retry_at`` set: back to ``queued`` until then. Otherwise the job ends
    ``cancelled`` if ``cancel`` is true, else ``failed``.
    """

    id: int
    lease_token: int
    error: JobError
    retry_at: datetime | None
    cancel: bool = False


@dataclass(frozen=True, slots=True)
class RescueReport:
    requeued: list[int]
    failed: list[int]


class JobReader(Protocol):
    """What HTTP and the CLI need: reads only."""

    async def get_job(self, job_id: int) -> Job | None: ...

    async def list_jobs(self, query: JobQuery, now: datetime) -> JobPage:
        """Newest first. ``query.status`` is one of :attr:`StatusFilter.ALL`."""
        ...

    async def matching_ids(self, query: JobQuery, now: datetime) -> list[int]:
        """The ids of every job ``query`` matches as :meth:`list_jobs` would list
        them (its offset and limit aside), ascending: what a bulk action by
        filter acts on."""
        ...

    async def count_jobs(self, now: datetime) -> JobCounts: ...

    async def finished_per_minute(self, since: datetime) -> list[FinishedTally]:
        """How many jobs finished at or after ``since``, by UTC minute, queue and
        finished status (done, failed, cancelled), in that order."""
        ...

    async def next_run_at(self, queue: str) -> datetime | None:
        """The earliest ``run_at`` among the queue's queued jobs."""
        ...

    async def list_queues(self, now: datetime, *, active_only: bool = False) -> list[QueueInfo]:
        """Every queue that has jobs or a pause record, by name. ``active_only``
        counts waiting and running jobs only (done/failed/cancelled read 0): an
        index read, cheap enough to sample every few seconds."""
        ...

    async def cron_ticks(self) -> dict[str, datetime]:
        """The last recorded tick of every cron entry, by name."""
        ...

    async def cron_last_jobs(self) -> dict[str, int]:
        """The id of the job each cron entry last inserted (see ``advance_cron``),
        by name; entries that have inserted none are left out."""
        ...


class JobWriter(Protocol):
    """What submitters, the queue runtime and maintenance need."""

    async def insert_jobs(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        """All or none, in one transaction; returned in the order given."""
        ...

    async def insert_unique(self, new_job: NewJob, now: datetime, since: datetime) -> Insertion:
        """Store ``new_job`` unless a job with its ``unique_key`` was inserted at
        or after ``since``; safe against concurrent callers, across processes."""
        ...

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        """Up to ``limit`` due jobs by (priority, id), now ``running`` under a lease."""
        ...

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[int]:
        """Mark jobs ``done``; returns the ids refused as stale."""
        ...

    async def fail_jobs(self, failures: Sequence[Failure]) -> list[int]:
        """Record failed attempts; returns the ids refused as stale."""
        ...

    async def release_jobs(self, leases: Sequence[Lease]) -> list[int]:
        """Put running jobs back to ``queued`` without spending their attempt."""
        ...

    async def extend_leases(self, leases: Sequence[Lease], until: datetime) -> list[int]:
        """Push leases forward; returns the ids no longer held."""
        ...

    async def release_orphans(
        self, node: str, held: Collection[int], started_before: datetime
    ) -> list[int]:
        """Put back to ``queued``, without spending their attempt, the jobs
        running under ``node`` that started before ``started_before`` and are
        not in ``held``: claims the node made whose runs it does not have (the
        claim committed, its answer never arrived). Their ids, ascending."""
        ...

    async def rescue_expired_leases(
        self,
        now: datetime,
        max_rescues: int,
        spare: Collection[int] = (),
        *,
        fence: LeaderTerm | None = None,
    ) -> RescueReport:
        """Requeue (or fail, see :func:`rescue_verdict`) running jobs whose lease
        ran out or whose node is gone — except ``spare``: the jobs the calling
        node itself still holds (running, or their outcome being written).
        Nothing, if ``fence`` is no longer the current leader term."""
        ...

    async def prune_finished(self, before: datetime, *, fence: LeaderTerm | None = None) -> int:
        """Delete done/failed/cancelled jobs finished before ``before`` (none if
        ``fence`` is no longer the current leader term)."""
        ...

    async def expire_results(self, now: datetime, *, fence: LeaderTerm | None = None) -> int:
        """Delete finished jobs that have outlived their ``result_ttl`` (none if
        ``fence`` is no longer the current leader term)."""
        ...

    async def advance_cron(
        self,
        name: str,
        tick: datetime,
        new_job: NewJob | None,
        now: datetime,
        *,
        fence: LeaderTerm | None = None,
    ) -> Job | None:
        """If cron entry ``name`` has no recorded tick or one before ``tick``,
        record ``tick`` and insert ``new_job`` (if given, recording its id as
        the entry's last job), atomically: of many callers, on any node, one
        wins. The inserted job, else None. Nothing is recorded or inserted if
        ``fence`` is no longer the current term."""
        ...

    async def cancel_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        """Cancel those of ``ids`` that are waiting (queued or scheduled); their ids."""
        ...

    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause (claims take nothing) or resume a queue; kept across restarts."""
        ...

    async def retry_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        """Queue again, due now, those of ``ids`` that failed or were cancelled
        (and are not past their ``result_ttl``: those are gone), with one more
        attempt allowed if they had used all theirs; their ids."""
        ...


class Store(JobReader, JobWriter, Protocol):
    """A backend: both halves, plus life cycle and liveness."""

    url: str

    async def open(self) -> None:
        """Connect, create or migrate the schema. Idempotent."""
        ...

    async def close(self) -> None:
        """Flush and disconnect. Idempotent."""
        ...

    def bound_waits(self, lease: float) -> None:
        """Before :meth:`open`: no statement may wait longer than fits ``lease``
        (a statement that hangs would hold up the outcomes and leases behind it)."""
        ...

    async def register_node(self, node: str) -> None:
        """Announce a live worker node, so its death can be seen."""
        ...

    async def tend_tables(self) -> list[str]:
        """Refresh what the database's planner knows of the jobs table when it
        has changed a lot, and reclaim dead rows where nothing else does; say
        what was done (leader-run, every few seconds; cheap when nothing is due)."""
        ...

    def problem(self) -> str | None:
        """Why the store is unhealthy right now, or None."""
        ...

    def notifier(self) -> Notifier | None:
        """Hears jobs stored by other processes, where the backend can tell."""
        ...

    async def seek_leadership(self, node: str, now: datetime, until: datetime) -> LeaderTerm | None:
        """Hold the cluster's leader lease for ``node`` until ``until``: renewed
        in the same term while ``node`` holds it and it has not lapsed by ``now``;
        taken in the next term when it is free, lapsed, or resigned. None while
        another node holds it. Terms only go up, across restarts."""
        ...

    async def resign_leadership(self, held: LeaderTerm, now: datetime) -> None:
        """Let the lease lapse at ``now`` if ``held`` is still the current term,
        so another node takes it at its next ask."""
        ...

    async def record_node(self, info: NodeInfo) -> None:
        """Insert or refresh a node's record (its heartbeat)."""
        ...

    async def forget_node(self, node: str) -> None: ...

    async def list_nodes(self, alive_since: datetime) -> list[NodeInfo]:
        """Nodes whose heartbeat is not older than ``alive_since``, by name."""
        ...


def rescue_verdict(job: Job, now: datetime, max_rescues: int) -> tuple[JobError, bool]:
    """What to do with a running job whose worker was lost: (error, requeue?).

    Requeued while it has attempts and rescues left; failed otherwise, with
    the error saying which limit it hit.
    """
    lost = f"node lost: {job.locked_by or 'unknown'} stopped holding the job while it ran"
    if job.rescued >= max_rescues:
        return JobError(
            job.attempt,
            now,
            f"{lost}; rescued {job.rescued + 1} times (limit {max_rescues}): the job keeps "
            "losing its worker, so it is failed instead of retried",
            started_at=job.started_at,
        ), False
    if job.attempt >= job.max_attempts:
        return JobError(
            job.attempt, now, f"{lost}; no attempts left", started_at=job.started_at
        ), False
    return JobError(job.attempt, now, lost, started_at=job.started_at), True
