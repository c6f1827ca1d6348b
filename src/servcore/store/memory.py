"""``memory://``: the store in a dict. Same semantics, nothing durable."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

import msgspec

from servcore.job_reads import (
    FinishedTally,
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
    StatusFilter,
    ascii_lower,
)
from servcore.jobs import Job, JobStatus, NewJob
from servcore.leadership.base import LeaderTerm
from servcore.notifier.local import LocalNotifier
from servcore.store.base import (
    ClaimParams,
    Completion,
    Failure,
    Lease,
    RescueReport,
    rescue_verdict,
)
from servcore.store.queue_sql import tallied_queues

_replace = msgspec.structs.replace
_QUEUED = JobStatus.QUEUED
_RUNNING = JobStatus.RUNNING


class MemoryStore:
    """Jobs in a dict, due jobs in a heap per queue, waiting jobs in another."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        # queue -> heap of (priority, id, lease_token): queued and due. The
        # token tells a live entry from one left behind by an earlier run.
        self._due: dict[str, list[tuple[int, int, int]]] = {}
        # queue -> heap of (run_at, id): queued, maybe not yet due.
        self._waiting: dict[str, list[tuple[datetime, int]]] = {}
        self._counts = dict.fromkeys(JobStatus, 0)
        self._nodes: dict[str, NodeInfo] = {}
        self._unique: dict[str, int] = {}  # unique_key -> newest job id
        self._expiring: set[int] = set()  # ids of jobs with a result_ttl
        self._cron: dict[str, datetime] = {}
        self._cron_jobs: dict[str, int] = {}
        self._paused: dict[str, bool] = {}
        # The leader lease: (node, term, until); the term survives a resign.
        self._leader: tuple[str, int, datetime] | None = None
        self._finishes = LocalNotifier()

    # -- life cycle -------------------------------------------------------

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def bound_waits(self, lease: float) -> None:
        return None  # nothing here waits

    async def tend_tables(self) -> list[str]:
        return []  # no planner, no dead rows

    async def register_node(self, node: str) -> None:
        return None

    async def seek_leadership(self, node: str, now: datetime, until: datetime) -> LeaderTerm | None:
        current = self._leader
        if current is None:
            term = 1
        else:
            holder, term, lapses = current
            if holder != node or lapses <= now:
                if lapses > now:
                    return None  # another node holds it
                term += 1
        self._leader = (node, term, until)
        return LeaderTerm(node, term)

    async def resign_leadership(self, held: LeaderTerm, now: datetime) -> None:
        if self._leads(held):
            self._leader = (held.node, held.term, now)

    def _leads(self, fence: LeaderTerm | None) -> bool:
        """True unless ``fence`` is given and is no longer the current term."""
        if fence is None:
            return True
        return self._leader is not None and self._leader[:2] == (fence.node, fence.term)

    async def record_node(self, info: NodeInfo) -> None:
        self._nodes[info.node] = info

    async def forget_node(self, node: str) -> None:
        self._nodes.pop(node, None)

    async def list_nodes(self, alive_since: datetime) -> list[NodeInfo]:
        return sorted(
            (info for info in self._nodes.values() if info.heartbeat_at >= alive_since),
            key=lambda info: info.node,
        )

    def notifier(self) -> LocalNotifier:
        """Finishes only: in one process, submissions wake the queues directly."""
        return self._finishes

    def problem(self) -> str | None:
        return None

    # -- writes -----------------------------------------------------------

    def _enqueue(self, job: Job, now: datetime) -> None:
        if job.run_at <= now:
            heapq.heappush(
                self._due.setdefault(job.queue, []), (job.priority, job.id, job.lease_token)
            )
        else:
            heapq.heappush(self._waiting.setdefault(job.queue, []), (job.run_at, job.id))

    def _set(self, old: Job, new: Job) -> None:
        self._jobs[new.id] = new
        if new.status.finished and not old.status.finished:
            self._finishes.finished(new.id)
        if old.status is not new.status:
            self._counts[old.status] -= 1
            self._counts[new.status] += 1

    async def insert_jobs(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        inserted = []
        for new in new_jobs:
            job = new.stored(next(self._ids), now)
            if new.unique_key is not None:
                self._unique[new.unique_key] = job.id
            if new.result_ttl is not None:
                self._expiring.add(job.id)
            self._jobs[job.id] = job
            self._enqueue(job, now)
            inserted.append(job)
        self._counts[_QUEUED] += len(inserted)
        return inserted

    async def insert_unique(self, new_job: NewJob, now: datetime, since: datetime) -> Insertion:
        key = new_job.unique_key
        assert key is not None, "insert_unique needs a unique_key"
        known = self._jobs.get(self._unique.get(key, 0))
        if known is not None and known.inserted_at >= since:
            same = known.payload == new_job.payload
            return Insertion(known, "existing" if same else "conflict")
        (job,) = await self.insert_jobs([new_job], now)
        return Insertion(job, "created")

    def _promote_due(self, queue: str, now: datetime) -> list[tuple[int, int, int]]:
        due = self._due.setdefault(queue, [])
        waiting = self._waiting.get(queue)
        while waiting and waiting[0][0] <= now:
            run_at, job_id = heapq.heappop(waiting)
            job = self._jobs.get(job_id)
            if job is not None and job.status is _QUEUED and job.run_at == run_at:
                heapq.heappush(due, (job.priority, job_id, job.lease_token))
        return due

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        if self._paused.get(params.queue):
            return []
        due = self._promote_due(params.queue, params.now)
        claimed: list[Job] = []
        while due and len(claimed) < params.limit:
            _, job_id, token = heapq.heappop(due)
            job = self._jobs.get(job_id)
            if (
                job is None
                or job.status is not _QUEUED
                or job.lease_token != token
                or job.run_at > params.now
            ):
                # An entry left behind: cancelled, claimed via another entry, or
                # retried for later (its entry for then is in _waiting).
                continue
            running = _replace(
                job,
                status=_RUNNING,
                attempt=job.attempt + 1,
                started_at=params.now,
                locked_by=params.node,
                locked_until=params.lease_until,
                lease_token=job.lease_token + 1,
            )
            self._jobs[job_id] = running
            claimed.append(running)
        self._counts[_QUEUED] -= len(claimed)
        self._counts[_RUNNING] += len(claimed)
        return claimed

    def _held(self, job_id: int, token: int) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not _RUNNING or job.lease_token != token:
            return None
        return job

    def _taken_late(self, job_id: int, token: int) -> Job | None:
        """A job rescued from the run with ``token`` while it was in fact alive
        (its node stalled): taken, with the rescue uncounted, if nothing has run
        it since; if something has, the rescue of a run that did end is
        uncounted toward the poison-pill cap and the outcome refused (None)."""
        job = self._jobs.get(job_id)
        if job is None or job.rescued == 0 or job.lease_token < token:
            return None
        uncounted = _replace(job, rescued=job.rescued - 1)
        self._jobs[job_id] = uncounted
        if job.lease_token == token and job.status in (_QUEUED, JobStatus.FAILED):
            return uncounted
        return None

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[int]:
        stale = []
        for done in completions:
            job = self._held(done.id, done.lease_token) or self._taken_late(
                done.id, done.lease_token
            )
            if job is None:
                stale.append(done.id)
                continue
            self._set(
                job,
                _replace(
                    job,
                    status=JobStatus.DONE,
                    finished_at=done.finished_at,
                    result=done.result,
                    locked_until=None,
                ),
            )
        return stale

    async def fail_jobs(self, failures: Sequence[Failure]) -> list[int]:
        stale = []
        for failure in failures:
            job = self._held(failure.id, failure.lease_token) or self._taken_late(
                failure.id, failure.lease_token
            )
            if job is None:
                stale.append(failure.id)
                continue
            errors = (*job.errors, failure.error)
            if failure.retry_at is not None:
                queued = _replace(
                    job,
                    status=_QUEUED,
                    run_at=failure.retry_at,
                    errors=errors,
                    locked_by=None,
                    locked_until=None,
                )
                self._set(job, queued)
                self._enqueue(queued, failure.error.at)
            else:
                status = JobStatus.CANCELLED if failure.cancel else JobStatus.FAILED
                self._set(
                    job,
                    _replace(
                        job,
                        status=status,
                        finished_at=failure.error.at,
                        errors=errors,
                        locked_until=None,
                    ),
                )
        return stale

    async def release_jobs(self, leases: Sequence[Lease]) -> list[int]:
        stale = []
        for lease in leases:
            job = self._held(lease.id, lease.lease_token)
            if job is None:
                stale.append(lease.id)
                continue
            queued = _replace(
                job,
                status=_QUEUED,
                attempt=job.attempt - 1,
                started_at=None,
                locked_by=None,
                locked_until=None,
            )
            self._set(job, queued)
            heapq.heappush(
                self._due.setdefault(job.queue, []), (job.priority, job.id, job.lease_token)
            )
        return stale

    async def extend_leases(self, leases: Sequence[Lease], until: datetime) -> list[int]:
        lost = []
        for lease in leases:
            job = self._held(lease.id, lease.lease_token)
            if job is None:
                lost.append(lease.id)
            else:
                self._jobs[job.id] = _replace(job, locked_until=until)
        return lost

    async def release_orphans(
        self, node: str, held: Collection[int], started_before: datetime
    ) -> list[int]:
        orphans = sorted(
            job.id
            for job in self._jobs.values()
            if job.status is _RUNNING
            and job.locked_by == node
            and job.started_at is not None
            and job.started_at < started_before
            and job.id not in held
        )
        await self.release_jobs(
            [Lease(job_id, self._jobs[job_id].lease_token) for job_id in orphans]
        )
        return orphans

    async def rescue_expired_leases(
        self,
        now: datetime,
        max_rescues: int,
        spare: Collection[int] = (),
        *,
        fence: LeaderTerm | None = None,
    ) -> RescueReport:
        report = RescueReport(requeued=[], failed=[])
        if not self._leads(fence):
            return report
        expired = [
            job
            for job in self._jobs.values()
            if job.status is _RUNNING
            and job.locked_until is not None
            and job.locked_until <= now
            and job.id not in spare
        ]
        for job in expired:
            error, requeue = rescue_verdict(job, now, max_rescues)
            if requeue:
                queued = _replace(
                    job,
                    status=_QUEUED,
                    run_at=now,
                    errors=(*job.errors, error),
                    locked_by=None,
                    locked_until=None,
                    rescued=job.rescued + 1,
                )
                self._set(job, queued)
                self._enqueue(queued, now)
                report.requeued.append(job.id)
            else:
                self._set(
                    job,
                    _replace(
                        job,
                        status=JobStatus.FAILED,
                        finished_at=now,
                        errors=(*job.errors, error),
                        locked_by=None,
                        locked_until=None,
                        rescued=job.rescued + 1,
                    ),
                )
                report.failed.append(job.id)
        return report

    async def set_paused(self, queue: str, paused: bool) -> None:
        self._paused[queue] = paused

    async def list_queues(self, now: datetime, *, active_only: bool = False) -> list[QueueInfo]:
        tallies: dict[str, dict[str, Any]] = {name: {} for name in self._paused}
        for job in self._jobs.values():
            if active_only and job.status.finished:
                continue
            tally = tallies.setdefault(job.queue, {})
            kind = job.status.value
            if job.status is _QUEUED:
                kind = "scheduled" if job.run_at > now else "available"
                if kind == "available":
                    oldest = tally.get("oldest")
                    tally["oldest"] = job.run_at if oldest is None else min(oldest, job.run_at)
            tally[kind] = tally.get(kind, 0) + 1
        return tallied_queues(tallies, self._paused)

    async def cancel_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        done = []
        for job_id in ids:
            job = self._jobs.get(job_id)
            if job is not None and job.status in (_QUEUED, JobStatus.RUNNING):
                cancelled = _replace(
                    job,
                    status=JobStatus.CANCELLED,
                    finished_at=now,
                    locked_until=None,
                )
                self._set(job, cancelled)
                done.append(job_id)
        return done

    async def retry_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        done = []
        for job_id in ids:
            job = self._jobs.get(job_id)
            if (
                job is not None
                and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
                and not job.expired(now)
            ):
                queued = _replace(
                    job,
                    status=_QUEUED,
                    run_at=now,
                    finished_at=None,
                    max_attempts=max(job.max_attempts, job.attempt + 1),
                    rescued=0,
                    locked_by=None,
                )
                self._set(job, queued)
                self._enqueue(queued, now)
                done.append(job_id)
        return done

    async def prune_finished(self, before: datetime, *, fence: LeaderTerm | None = None) -> int:
        if not self._leads(fence):
            return 0
        doomed = [
            job
            for job in self._jobs.values()
            if job.status.finished and job.finished_at is not None and job.finished_at < before
        ]
        for job in doomed:
            del self._jobs[job.id]
            self._counts[job.status] -= 1
        return len(doomed)

    async def advance_cron(
        self,
        name: str,
        tick: datetime,
        new_job: NewJob | None,
        now: datetime,
        *,
        fence: LeaderTerm | None = None,
    ) -> Job | None:
        last = self._cron.get(name)
        if (last is not None and last >= tick) or not self._leads(fence):
            return None
        self._cron[name] = tick
        if new_job is None:
            return None
        (job,) = await self.insert_jobs([new_job], now)
        self._cron_jobs[name] = job.id
        return job

    async def cron_ticks(self) -> dict[str, datetime]:
        return dict(self._cron)

    async def cron_last_jobs(self) -> dict[str, int]:
        return dict(self._cron_jobs)

    async def expire_results(self, now: datetime, *, fence: LeaderTerm | None = None) -> int:
        if not self._leads(fence):
            return 0
        expired = []
        for job_id in list(self._expiring):
            job = self._jobs.get(job_id)
            if job is None:
                self._expiring.discard(job_id)
            elif job.status.finished and job.expired(now):
                expired.append(job)
        for job in expired:
            self._expiring.discard(job.id)
            del self._jobs[job.id]
            self._counts[job.status] -= 1
        return len(expired)

    # -- reads ------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def _matching(self, query: JobQuery, now: datetime) -> Iterator[Job]:
        """What ``query`` matches (offset and limit aside), newest first."""
        status = query.status
        search = query if query.search else None
        return (
            job
            for job in reversed(self._jobs.values())
            if (query.queue is None or job.queue == query.queue)
            and (query.task is None or job.task == query.task)
            and (status is None or _matches(job, status, now))
            and (search is None or _found(job, search.search_id, search.search_text))
        )

    async def list_jobs(self, query: JobQuery, now: datetime) -> JobPage:
        selected = list(self._matching(query, now))
        after = query.after_id
        older = selected if after is None else [job for job in selected if job.id < after]
        return JobPage(older[query.offset : query.offset + query.limit], len(selected))

    async def matching_ids(self, query: JobQuery, now: datetime) -> list[int]:
        return sorted(job.id for job in self._matching(query, now))

    async def finished_per_minute(self, since: datetime) -> list[FinishedTally]:
        tally: dict[tuple[datetime, str, str], int] = {}
        for job in self._jobs.values():
            if job.status.finished and job.finished_at is not None and job.finished_at >= since:
                minute = job.finished_at.replace(second=0, microsecond=0)
                key = (minute, job.queue, job.status.value)
                tally[key] = tally.get(key, 0) + 1
        return [FinishedTally(*key, count) for key, count in sorted(tally.items())]

    async def count_jobs(self, now: datetime) -> JobCounts:
        scheduled = sum(
            1 for job in self._jobs.values() if job.status is _QUEUED and job.run_at > now
        )
        counts = self._counts
        return JobCounts(
            queued=counts[_QUEUED],
            running=counts[_RUNNING],
            done=counts[JobStatus.DONE],
            failed=counts[JobStatus.FAILED],
            cancelled=counts[JobStatus.CANCELLED],
            scheduled=scheduled,
        )

    async def next_run_at(self, queue: str) -> datetime | None:
        # Due entries are few (claims drain them); waiting ones are ordered by
        # run_at, so past the superseded entries on top, the top is the earliest.
        runs = [
            job.run_at
            for _, job_id, _ in self._due.get(queue, ())
            if (job := self._jobs.get(job_id)) is not None and job.status is _QUEUED
        ]
        waiting = self._waiting.get(queue)
        while waiting:
            run_at, job_id = waiting[0]
            job = self._jobs.get(job_id)
            if job is not None and job.status is _QUEUED and job.run_at == run_at:
                runs.append(run_at)
                break
            heapq.heappop(waiting)
        return min(runs) if runs else None


def _matches(job: Job, status: str, now: datetime) -> bool:
    if status == StatusFilter.SCHEDULED:
        return job.status is _QUEUED and job.run_at > now
    if status == StatusFilter.AVAILABLE:
        return job.status is _QUEUED and job.run_at <= now
    return job.status == status


def _found(job: Job, search_id: int, text: str) -> bool:
    """As the SQL stores search: the id, or the payload's JSON text."""
    return job.id == search_id or text in ascii_lower(msgspec.json.encode(job.payload).decode())
