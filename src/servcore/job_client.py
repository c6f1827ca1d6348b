"""What an app process needs without running workers: submit jobs, control
them, read them.

Jobs stored here wake this process's own queues, if it runs any (the
worker node's ``wake_for``); a cancel stops this process's run of the job at
once, other nodes hear of it from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from servcore.clock import Clock
from servcore.config import ServiceConfig
from servcore.cron import CronEntry
from servcore.errors import JobNotFound
from servcore.job_reads import (
    FinishedHistory,
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
    unserved_queues,
)
from servcore.job_requests import (
    JobRequestError,
    JobStateError,
    UniqueConflict,
    job_request,
    to_new_job,
)
from servcore.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    Job,
    JobRequest,
    NewJob,
    task_name,
    valid_queue_name,
)
from servcore.loop_thread import LoopThread
from servcore.queue_router import QueueRouter
from servcore.store.base import Store
from servcore.tasks import TaskSpec
from servcore.worker_node import NODE_HEARTBEAT, WorkerNode

NODE_MISSED_BEATS = 3
BULK_CHUNK = 1000  # jobs per store write of a bulk action by filter


class JobClient:
    def __init__(
        self,
        store: Store,
        config: ServiceConfig,
        *,
        clock: Clock,
        router: QueueRouter,
        node: WorkerNode,
        cron_entries: Mapping[str, CronEntry],
        trace_context: Callable[[], str | None] = lambda: None,
        open_for_calls: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.router = router
        # The node whose queues this process runs, if any: woken by what is
        # stored here, told of what is cancelled here.
        self.node = node
        self.cron_entries = cron_entries
        self._current_trace = trace_context
        # For calls from code that is not async (enqueue_sync): the loop the
        # store was opened on (set by whoever opens it), and how to open it
        # on a loop of our own when nobody has.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._open_for_calls = open_for_calls
        self._loop_thread = LoopThread()
        self._opening = threading.Lock()

    # -- submitting -------------------------------------------------------

    def build_job(self, request: JobRequest | dict[str, Any], /, **options: Any) -> NewJob:
        """The job ``request`` asks for, with its task's defaults.

        ``request`` is a :class:`JobRequest`, or a payload and ``options`` —
        :class:`JobRequest`'s fields (queue, priority, max_attempts, …),
        checked here. Raises :class:`JobRequestError` naming the first problem:
        among them a task this service has no handler for, once it registers
        tasks, and a queue nobody declares, once it declares pipelines.
        """
        new = self.job_template(request, **options)
        problem = self.router.registry.missing(new.task, new.queue)
        if problem is not None:
            raise JobRequestError(problem)
        return new

    def job_template(self, request: JobRequest | dict[str, Any], /, **options: Any) -> NewJob:
        """:meth:`build_job` without the task check: for a job made later
        (a cron entry declared before its task is registered)."""
        if not isinstance(request, JobRequest):
            request = job_request({"payload": request, **options})
        elif options:
            raise TypeError("give a JobRequest or a payload with options, not both")
        name = task_name(request.payload)
        queue = request.queue if request.queue is not None else self.router.task_queue(name)
        unknown = self.router.undeclared(queue, self.config)
        if unknown is not None:
            raise JobRequestError(unknown)
        if self.router.held_apart(queue) is not None:
            routes = self.router.pipelines[queue].routes
            raise JobRequestError(
                f"queue {queue!r} keeps its jobs in a store of its own: submit them through "
                + (f"its routes ({routes}) or " if routes else "")
                + f"service.pipeline({queue!r})"
            )
        spec = self.router.registry.get(name)
        now = self.clock.now()
        # What the job will run with, shown on its record: the request's, else
        # its task's, else the service's. A task this node does not know keeps
        # None (the worker that runs it applies its own task's defaults).
        backoff = request.backoff
        if backoff is None and spec is not None:
            backoff = (spec.backoff or self.config.runtime.backoff).base
        return to_new_job(
            request,
            run_at=request.run_at
            if request.run_at is not None
            else now + timedelta(seconds=request.delay or 0),
            queue=queue,
            task=name,
            max_attempts=request.max_attempts
            or (spec.max_attempts if spec and spec.max_attempts else DEFAULT_MAX_ATTEMPTS),
            timeout=request.timeout
            if request.timeout is not None or spec is None
            else spec.timeout,
            backoff=backoff,
            trace_context=self._current_trace(),
        )

    async def submit(self, new_jobs: Sequence[NewJob]) -> list[Job]:
        """Store jobs (durably, for durable stores) and wake the queues that run them.

        A job with a ``unique_key`` goes alone (see :meth:`submit_unique`): an
        earlier job with its key and payload is returned instead of a new one,
        and another payload under the key raises :class:`UniqueConflict`.
        """
        if any(new.unique_key is not None for new in new_jobs):
            if len(new_jobs) != 1:
                raise JobRequestError("jobs with a 'unique_key' are submitted one at a time")
            insertion = await self.submit_unique(new_jobs[0])
            if insertion.outcome == "conflict":
                raise UniqueConflict(insertion.job)
            return [insertion.job]
        jobs = await self.store.insert_jobs(new_jobs, self.clock.now())
        self.node.wake_for(jobs)
        return jobs

    async def submit_unique(self, new_job: NewJob) -> Insertion:
        """Store a job with a ``unique_key`` unless one with that key was stored
        within ``unique_period`` seconds; say which happened."""
        now = self.clock.now()
        since = now - timedelta(seconds=self.config.maintenance.unique_period)
        insertion = await self.store.insert_unique(new_job, now, since)
        if insertion.outcome == "created":
            self.node.wake_for([insertion.job])
        return insertion

    async def enqueue(
        self, task: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        """Submit one job for ``task`` from Python; options as in :meth:`build_job`."""
        (job,) = await self.submit([self._job_of(task, payload, options)])
        return job

    def _job_of(self, task: str, payload: dict[str, Any] | None, options: dict[str, Any]) -> NewJob:
        return self.build_job({"task": task, **(payload or {})}, **options)

    def enqueue_sync(self, task: str, payload: dict[str, Any] | None = None, **options: Any) -> Job:
        """:meth:`enqueue` for code that is not async (a Django view, a Flask
        route, a script): returns once the job is stored. If the service is
        not started, its store is opened (no workers) on a loop thread of its
        own at the first call. In async code, ``await enqueue(...)`` instead.

        On SQLite the job is committed in the calling thread (no hand-off to
        the writer thread and back: one caller at a time gains most)."""
        loop = self._loop_for_calls()
        new = self._job_of(task, payload, options)
        blocking = getattr(self.store, "insert_jobs_blocking", None)
        if blocking is None or new.unique_key is not None:
            (job,) = self._loop_thread.run(self.submit([new]), loop)
            return job
        jobs: list[Job] = blocking([new], self.clock.now())
        if self.node.runtimes:  # queues of this process to wake (a hop to their loop)
            loop.call_soon_threadsafe(self.node.wake_for, jobs)
        return jobs[0]

    def _loop_for_calls(self) -> asyncio.AbstractEventLoop:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self.loop:
            # It would wait for this very loop, which cannot run meanwhile.
            raise RuntimeError("enqueue_sync() blocks: in async code, use await enqueue()")
        with self._opening:  # one thread opens; the others wait until it is open
            if self.loop is None:
                if self._open_for_calls is None:
                    raise RuntimeError("this client's store is not open")
                self._loop_thread.run(self._open_for_calls())
        assert self.loop is not None
        return self.loop

    async def enqueue_many(self, new_jobs: Sequence[NewJob]) -> list[Job]:
        """Submit many jobs in one store transaction."""
        return await self.submit(new_jobs)

    # -- control ----------------------------------------------------------

    async def cancel_job(self, job_id: int) -> Job | None:
        """Cancel a queued, scheduled or running job; the job as it now is.

        A running job ends ``cancelled`` at once; its handler is stopped on
        whichever node runs it (see :mod:`servcore.tasks`). Raises
        :class:`JobStateError` for a job that has already finished.
        """
        done = await self.store.cancel_jobs([job_id], self.clock.now())
        job = await self.store.get_job(job_id)
        if done and job is not None:
            self.node.stop_run(job_id, job.lease_token)
        if job is not None and not done:
            raise JobStateError(
                f"Job {job_id} is {job.status.value}: only queued, scheduled or running jobs "
                "can be cancelled"
            )
        return job

    async def cancel_jobs(self, ids: Sequence[int]) -> list[int]:
        """Cancel every one of ``ids`` that is queued, scheduled or running (their
        runs stopped as :meth:`cancel_job` does); the ids cancelled."""
        done = await self.store.cancel_jobs(ids, self.clock.now())
        for job_id in done:
            self.node.stop_run(job_id)
        return done

    async def cancel_matching(self, query: JobQuery) -> list[int]:
        """Cancel every job ``query`` matches (its offset and limit aside) that
        can be, as :meth:`cancel_jobs` does; the ids cancelled. Jobs that
        match by the time of the call: one written after it is left alone."""
        return await self._in_chunks(query, self.cancel_jobs)

    async def retry_matching(self, query: JobQuery) -> list[int]:
        """Queue again every job ``query`` matches that failed or was cancelled,
        as :meth:`retry_jobs` does; the ids retried."""
        return await self._in_chunks(query, self.retry_jobs)

    async def _in_chunks(
        self, query: JobQuery, action: Callable[[Sequence[int]], Coroutine[Any, Any, list[int]]]
    ) -> list[int]:
        ids = await self.store.matching_ids(query, self.clock.now())
        done: list[int] = []
        # A write per chunk: each transaction stays short however many match.
        for start in range(0, len(ids), BULK_CHUNK):
            done += await action(ids[start : start + BULK_CHUNK])
        return done

    async def retry_jobs(self, ids: Sequence[int]) -> list[int]:
        """Queue again, due now, every one of ``ids`` that failed or was cancelled."""
        done = await self.store.retry_jobs(ids, self.clock.now())
        self.node.wake_all()
        return done

    async def retry_job(self, job_id: int) -> Job | None:
        """Queue a failed or cancelled job again, due now; the job as it now is
        (None if there is none, or it is past its ``result_ttl``)."""
        done = await self.store.retry_jobs([job_id], self.clock.now())
        job = await self.get_job(job_id)  # None too for one past its result_ttl
        if job is not None and not done:
            raise JobStateError(
                f"Job {job_id} is {job.status.value}: only failed or cancelled jobs can be retried"
            )
        if job is not None:
            self.node.wake_for([job])
        return job

    async def pause_queue(self, name: str) -> None:
        """Keep the queue's jobs waiting (they are still accepted); survives restarts."""
        _check_queue_name(name)
        if (apart := self.router.held_apart(name)) is not None:
            return await apart.pause_queue(name)
        await self.store.set_paused(name, True)

    async def resume_queue(self, name: str) -> None:
        _check_queue_name(name)
        if (apart := self.router.held_apart(name)) is not None:
            return await apart.resume_queue(name)
        await self.store.set_paused(name, False)
        self.node.notify(name)

    # -- reading ----------------------------------------------------------

    async def queues(self, *, active_only: bool = False) -> list[tuple[QueueInfo, int | None]]:
        """Every known queue, with this node's concurrency for those it runs
        (``active_only``: see ``Store.list_queues``)."""
        now = self.clock.now()
        listing = await self.store.list_queues(now, active_only=active_only)
        known = {info.name: info for info in listing}
        runtimes = self.node.runtimes
        for name in runtimes:
            known.setdefault(name, QueueInfo(name, False, 0, 0, 0, 0, 0, 0, None))
        listed = {
            name: (info, runtime.concurrency if (runtime := runtimes.get(name)) else None)
            for name, info in known.items()
            if self.router.held_apart(name) is None
        }
        for name, service in self.router.own_stores.items():
            for info, concurrency in await service.queues(active_only=active_only):
                if info.name == name:
                    listed[name] = (info, concurrency)
        return [listed[name] for name in sorted(listed)]

    def tasks(self) -> list[tuple[TaskSpec, str]]:
        """Every registered task, by name, with the queue its jobs go to."""
        registry = self.router.registry
        return [
            (spec, self.router.task_queue(name))
            for name in registry.names()
            if (spec := registry.get(name)) is not None
        ]

    async def cron_schedule(self) -> list[tuple[CronEntry, datetime | None, datetime]]:
        """Every cron entry with its last recorded tick and its next one."""
        now = self.clock.now()
        recorded = await self.store.cron_ticks() if self.cron_entries else {}
        schedule = [
            (entry, recorded.get(entry.name), entry.next_tick(now))
            for entry in self.cron_entries.values()
        ]
        for service in self.router.own_stores.values():
            schedule += await service.cron_schedule()
        return schedule

    async def cron_last_jobs(self) -> dict[str, int]:
        """The id of the job each cron entry last inserted, by entry name."""
        last = await self.store.cron_last_jobs() if self.cron_entries else {}
        for service in self.router.own_stores.values():
            last.update(await service.cron_last_jobs())
        return last

    async def get_job(self, job_id: int) -> Job | None:
        """The job, or None if unknown, pruned or past its ``result_ttl``
        (exactly then, whenever the expirer next deletes it)."""
        job = await self.store.get_job(job_id)
        if job is not None and job.result_ttl is not None and job.expired(self.clock.now()):
            return None
        return job

    # -- waiting ----------------------------------------------------------

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The job once it has finished (``done``, ``failed`` or ``cancelled``),
        whichever process runs it. Raises :class:`TimeoutError` if it has not
        within ``timeout`` seconds (None: no limit), :class:`JobNotFound` if
        there is no such job (or it is past its ``result_ttl``)."""
        job = await self.await_job(job_id, timeout)
        if not job.status.finished:
            raise TimeoutError(
                f"job {job_id} is still {job.status.value} after {timeout:g} s"
                if timeout is not None
                else f"job {job_id} is still {job.status.value}"
            )
        return job

    async def await_job(self, job_id: int, within: float | None) -> Job:
        """The job as soon as it has finished, or as it is after ``within``
        seconds (None: no limit). Raises :class:`JobNotFound` if there is no
        such job, or it went (``result_ttl``, pruning) meanwhile.

        Woken by this process's one listener (see ``notifier.waiters``): the
        store is read once at the start, once per finish heard, and every
        ``wait_poll_interval`` (1 s) in case a notification was lost."""
        poll = self.config.runtime.wait_poll_interval
        self.node.listen()
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        with self.node.finishes.watch(job_id) as woken:
            while True:
                woken.clear()  # before the read: a finish after it wakes us
                job = await self.get_job(job_id)
                if job is None:
                    raise JobNotFound(f"job {job_id} does not exist (or its result expired)")
                left = poll if deadline is None else deadline - loop.time()
                if job.status.finished or left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, poll)):
                        await woken.wait()

    async def run(
        self,
        task: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (Celery's get(timeout=): callers know it)
        **options: Any,
    ) -> Job:
        """:meth:`enqueue` the job, then :meth:`wait` for it: the finished job
        (its ``result`` when ``done``). Raises :class:`TimeoutError` if it has not
        finished within ``timeout`` seconds; it stays queued or running."""
        job = await self.enqueue(task, payload, **options)
        return await self.wait(job.id, timeout)

    async def list_jobs(self, query: JobQuery) -> JobPage:
        return await self.store.list_jobs(query, self.clock.now())

    async def history(self, minutes: int = 60) -> FinishedHistory:
        """Jobs done and failed in each of the last ``minutes`` minutes, by queue."""
        now = self.clock.now().replace(second=0, microsecond=0)
        first = now - timedelta(minutes=minutes - 1)
        span = [first + timedelta(minutes=i) for i in range(minutes)]
        return FinishedHistory.of(span, await self.store.finished_per_minute(first))

    async def count_jobs(self) -> JobCounts:
        return await self.store.count_jobs(self.clock.now())

    async def nodes(self) -> list[NodeInfo]:
        """Worker nodes that reported in within the last few heartbeats."""
        since = self.clock.now() - timedelta(seconds=NODE_HEARTBEAT * NODE_MISSED_BEATS)
        return await self.store.list_nodes(since)

    async def served_queues(self) -> set[str]:
        """The queues some live worker node runs (this one's included, before
        its first heartbeat lands), pipelines with a store of their own too."""
        served = set(self.node.runtimes)
        for info in await self.nodes():
            served.update(info.queues)
        for service in self.router.own_stores.values():
            served |= await service.served_queues()
        return served

    async def unserved_queues(
        self, listing: Sequence[QueueInfo] | None = None
    ) -> dict[str, QueueInfo]:
        """Queues with a job ready for over a minute and no live node running
        them (see ``job_reads.unserved_queues``); ``listing`` if read already."""
        if listing is None:
            listing = [info for info, _ in await self.queues(active_only=True)]
        return unserved_queues(listing, await self.served_queues(), self.clock.now())


def _check_queue_name(name: str) -> None:
    if not valid_queue_name(name):
        raise JobRequestError("a queue name is 1-100 letters, digits, '_', '-' or '.'")
