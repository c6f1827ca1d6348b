"""The composition root: one object that holds the store, the task registry
and the queue runtimes, and starts and stops them in the right order.

    service = Service("sqlite:///jobs.db")

    @service.task("send_email", max_attempts=5)
    async def send_email(job): ...

    await service.start()
    await service.enqueue("send_email", {"to": "a@example.com"})
    ...
    await service.stop()      # graceful: see QueueRuntime.drain
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import msgspec

from servcore.clock import SYSTEM_CLOCK, Clock
from servcore.config import DEFAULT_QUEUES, ConfigError, ServiceConfig
from servcore.cron import CronEntry, CronError, CronScheduler
from servcore.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE,
    Job,
    JobRequest,
    NewJob,
    task_name,
    valid_queue_name,
)
from servcore.leadership.base import Leadership, SoleLeadership
from servcore.maintenance.periodic import Periodic
from servcore.maintenance.pruner import Expirer, Pruner
from servcore.maintenance.rescuer import Rescuer
from servcore.metrics import Metrics
from servcore.pipelines import Pipeline
from servcore.requests import (
    JobRequestError,
    JobStateError,
    UniqueConflict,
    job_request,
    to_new_job,
)
from servcore.retry import Backoff
from servcore.runtime.executor import Executor
from servcore.runtime.job_events import JobEvents
from servcore.runtime.processes import ProcessPool
from servcore.runtime.queue import QueueRuntime
from servcore.store import store_from_url
from servcore.store.base import (
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
    RescueReport,
    Store,
    StoreError,
)
from servcore.store.instrumented import instrumented
from servcore.supervisor import Health, Supervisor
from servcore.tasks import ExecutorKind, Handler, HandlerT, TaskRegistry
from servcore.telemetry import Telemetry
from servcore.tracing import Tracing

log = logging.getLogger("servcore")

NODE_HEARTBEAT = 5.0
NODE_MISSED_BEATS = 3
TEND_INTERVAL = 5.0


class Service:
    """See the module docstring."""

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        config: ServiceConfig | None = None,
        registry: TaskRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pipelines: Sequence[Pipeline] = (),
        telemetry: Telemetry | None = None,
    ) -> None:
        config = config or ServiceConfig()
        if isinstance(store, str):
            config = config.with_overrides(store=store)
        elif store is not None:
            config = config.with_overrides(store=store.url)
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.store: Store = instrumented(
            store_from_url(config.store) if store is None or isinstance(store, str) else store,
            self.telemetry,
        )
        self.registry = registry or TaskRegistry()
        self.clock = clock
        self.health_state = Health()
        self._supervisor = Supervisor(self.health_state, expected=(StoreError,))
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPool | None = None
        self.runtimes: dict[str, QueueRuntime] = {}
        self._early_cancels: dict[tuple[int, int], float] = {}  # see _stop_run
        self._sampled_queues: set[str] = set()
        self._samples_queues = True  # not a pipeline's own: its parent samples every queue
        self.cron_entries: dict[str, CronEntry] = {}
        self.rescuer = Rescuer(self.store, config.max_rescues, self._on_rescued, self._held_here)
        self.pruner = Pruner(self.store, config.retention)
        self._started = False
        self._stopping = False
        self._hurry = asyncio.Event()
        self.leadership: Leadership = SoleLeadership()
        self._node_started_at = clock.now()
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        self.pipelines: dict[str, Pipeline] = {}
        # Pipelines with a store of their own run as services of their own.
        self._pipeline_services: dict[str, Service] = {}
        for pipeline in pipelines:
            self.add_pipeline(pipeline)
        self._count_metrics()
        if self.config.tracing:
            self.enable_tracing()

    def configure(self, **overrides: Any) -> None:
        """Change settings before :meth:`start` (the CLI applies env and flags here)."""
        if self._started:
            raise RuntimeError("configure() must be called before start()")
        config = self.config.with_overrides(**overrides)
        if config.store != self.config.store:
            self.store = instrumented(store_from_url(config.store), self.telemetry)
            self.rescuer = Rescuer(
                self.store, config.max_rescues, self._on_rescued, self._held_here
            )
            self.pruner = Pruner(self.store, config.retention)
        self.config = config
        self._count_metrics()
        if config.tracing and self.tracing is None:
            self.enable_tracing()
        elif not config.tracing and self.tracing is not None:
            self.tracing.detach()
            self._share_tracing(None)
        for name, service in self._pipeline_services.items():
            service.configure(**_settings(self._pipeline_config(self.pipelines[name])))

    # -- tasks ------------------------------------------------------------

    def task(
        self,
        name: str | None = None,
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        executor: ExecutorKind | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Register a handler: ``@service.task("resize_image", timeout=30)``.

        ``executor="process"`` runs a plain ``def`` handler in a worker process
        (for CPU-bound work): its timeout and a cancel kill that process.
        """
        return self.registry.task(
            name,
            queue=queue,
            max_attempts=max_attempts,
            timeout=timeout,
            backoff=backoff,
            executor=executor,
        )

    def set_default_handler(self, handler: Handler) -> None:
        self.registry.set_default(handler)

    # -- pipelines --------------------------------------------------------

    def add_pipeline(self, pipeline: Pipeline) -> None:
        """Run ``pipeline``'s queue with its own settings (see :mod:`servcore.pipelines`)."""
        if self._started:
            raise RuntimeError("add_pipeline() must be called before start()")
        if pipeline.name in self.pipelines:
            raise ConfigError(f"pipeline {pipeline.name!r} is declared twice")
        for other in self.pipelines.values():
            if pipeline.routes is not None and other.routes == pipeline.routes:
                raise ConfigError(
                    f"pipelines {other.name!r} and {pipeline.name!r} both want routes "
                    f"{pipeline.routes!r}"
                )
        tasks = pipeline.resolved_tasks()
        handler = pipeline.resolved_handler()
        if tasks is not None:
            try:
                self.registry.include(tasks, queue=pipeline.name)
            except ValueError as error:
                raise ConfigError(f"pipeline {pipeline.name!r}: {error}") from None
        if handler is not None:
            self.registry.set_queue_default(pipeline.name, handler)
        self.pipelines[pipeline.name] = pipeline
        if pipeline.store is not None:
            self._pipeline_services[pipeline.name] = Service(
                pipeline.store,
                config=self._pipeline_config(pipeline),
                registry=self.registry,
                clock=self.clock,
                telemetry=self.telemetry,
            )
            self._pipeline_services[pipeline.name].tracing = self.tracing
            self._pipeline_services[pipeline.name]._samples_queues = False

    def _count_metrics(self) -> None:
        """Attach or detach the Prometheus metrics as ``config.metrics`` says."""
        if self.config.metrics and self.metrics is None:
            self.metrics = Metrics(
                self.telemetry,
                self.config.node,
                self._running_jobs,
                known_task=lambda task: self.registry.get(task) is not None,
            )
            self.metrics.attach()
        elif not self.config.metrics and self.metrics is not None:
            self.metrics.detach()
            self.metrics = None
        if self.metrics is not None:
            self.metrics.node = self.config.node

    def enable_tracing(self, tracer_provider: Any = None) -> None:
        """OpenTelemetry spans for requests and job runs (see :mod:`servcore.tracing`);
        ``tracer_provider`` defaults to the global one."""
        if self.tracing is not None:
            self.tracing.detach()
        tracing = Tracing(self.telemetry, tracer_provider)
        tracing.attach()
        self.config = dataclasses.replace(self.config, tracing=True)
        self._share_tracing(tracing)

    def _share_tracing(self, tracing: Tracing | None) -> None:
        self.tracing = tracing
        for service in self._pipeline_services.values():
            service.tracing = tracing  # their events reach its handlers already

    def _running_jobs(self) -> dict[str, int]:
        running = {name: len(runtime.in_flight) for name, runtime in self.runtimes.items()}
        for service in self._pipeline_services.values():
            running.update(service._running_jobs())
        return running

    def _task_queue(self, task: str) -> str:
        spec = self.registry.get(task)
        return spec.queue if spec and spec.queue else DEFAULT_QUEUE

    def pipeline(self, name: str) -> Service:
        """The service that holds queue ``name``'s jobs: this one, or, for a
        pipeline with a store of its own, that pipeline's."""
        return self._pipeline_services.get(name, self)

    def _pipeline_config(self, pipeline: Pipeline) -> ServiceConfig:
        assert pipeline.store is not None
        # Its events reach this service's telemetry: counted once, here.
        return dataclasses.replace(
            self.config.with_overrides(
                store=pipeline.store,
                queues=(pipeline.name,),
                concurrency=self.concurrency_of(pipeline.name),
            ),
            metrics=False,
            metrics_port=None,
            tracing=False,
        )

    def concurrency_of(self, queue: str) -> int:
        """Jobs of ``queue`` run at once on this node: the environment's
        ``SERVCORE_QUEUE_CONCURRENCY``, else the pipeline's, else the service's."""
        configured = self.config.queue_concurrency.get(queue)
        if configured is not None:
            return configured
        pipeline = self.pipelines.get(queue)
        if pipeline is not None and pipeline.concurrency is not None:
            return pipeline.concurrency
        return self.config.concurrency

    def cron(
        self,
        expression: str,
        task: str,
        *,
        name: str | None = None,
        payload: dict[str, Any] | None = None,
        timezone: str = "UTC",
        **options: Any,
    ) -> CronEntry:
        """Insert a ``task`` job at every tick of ``expression`` (5 fields or
        an ``@hourly``-style alias) in ``timezone``, once across all nodes.

        ``name`` (default: the task's) identifies the entry across restarts;
        ``options`` are :meth:`build_job`'s (queue, priority, max_attempts, …).
        An entry for a pipeline with a store of its own is that pipeline's.
        Raises :class:`JobRequestError` for a bad expression, zone or option.
        """
        if self._started:
            raise RuntimeError("cron() must be called before start()")
        queue = options.get("queue") or self._task_queue(task)
        if queue in self._pipeline_services:
            return self._pipeline_services[queue].cron(
                expression, task, name=name, payload=payload, timezone=timezone, **options
            )
        entry_name = name or task
        if not entry_name or "\x00" in entry_name or len(entry_name) > 200:
            raise JobRequestError("a cron entry's name must be 1-200 characters, no NUL")
        if entry_name in self.cron_entries:
            raise JobRequestError(
                f"cron entry {entry_name!r} is already declared; give the second a name="
            )
        for refused in ("run_at", "delay", "unique_key"):
            if refused in options:
                raise JobRequestError(f"a cron entry sets its own '{refused}'")
        template = msgspec.structs.replace(
            self.build_job({"task": task, **(payload or {})}, **options), trace_context=None
        )
        try:
            entry = CronEntry.build(entry_name, expression, timezone, template)
        except CronError as error:
            raise JobRequestError(str(error)) from None
        self.cron_entries[entry_name] = entry
        return entry

    # -- life cycle -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    async def start(self, *, workers: bool = True, queues: Sequence[str] | None = None) -> None:
        """Open the store and, with ``workers``, start running queues."""
        if self._started:
            return
        self.store.bound_waits(self.config.lease)
        await self.store.open()
        self._started = True
        self._stopping = False
        self._hurry = asyncio.Event()
        try:
            for name, service in self._pipeline_services.items():
                # Its store opens either way: its routes answer on API nodes too.
                runs_it = workers and (queues is None or name in queues)
                await service.start(workers=runs_it and self._runs_queue(name))
            if workers:
                await self._start_workers(queues)
        except BaseException:
            # Half started is worse than stopped: undo it all, then say why.
            await self.stop(grace=0)
            raise

    def _runs_queue(self, name: str) -> bool:
        return self.config.queues == DEFAULT_QUEUES or name in self.config.queues

    async def _start_workers(self, queues: Sequence[str] | None) -> None:
        names = tuple(queues) if queues is not None else self._queue_names()
        names = tuple(name for name in names if name not in self._pipeline_services)
        self._threads = ThreadPoolExecutor(
            sum(self.concurrency_of(name) for name in names) or 1,
            thread_name_prefix="servcore-handler",
        )
        # Started lazily: no process exists until a process task runs.
        self._processes = ProcessPool(self.config.processes)
        await self.store.register_node(self.config.node)
        # Jobs of workers that died while we were down go back before we claim.
        await self.rescuer.run_once(self.clock.now())
        executor = Executor(
            self.registry, self.clock, self._threads, self.config.backoff, self._processes
        )
        events = JobEvents(self.telemetry, self.config.node, self.clock)
        for name in names:
            runtime = QueueRuntime(
                name,
                store=self.store,
                executor=executor,
                clock=self.clock,
                node=self.config.node,
                concurrency=self.concurrency_of(name),
                lease=self.config.lease,
                poll_interval=self.config.poll_interval,
                events=events,
            )
            runtime.early_cancels = self._early_cancels
            self.runtimes[name] = runtime
            runtime.start(self._supervisor)
        notifier = self.store.notifier()
        if notifier is not None:
            self._supervisor.start(
                "listener", lambda: notifier.run(self._on_notified, self._stop_run)
            )
        self.leadership = self.store.leadership(self.config.node)
        self._supervisor.start("leadership", self.leadership.run)
        self._node_started_at = self.clock.now()
        await self._heartbeat(self._node_started_at)
        self._start_maintenance()

    def _start_maintenance(self) -> None:
        """The periodic parts; those that act for the whole cluster only on the leader."""

        def every(
            name: str,
            run_once: Callable[[datetime], Awaitable[object]],
            interval: float,
            *,
            leader_only: bool,
        ) -> None:
            periodic = Periodic(
                name,
                run_once,
                interval=interval,
                clock=self.clock,
                health=self.health_state,
                gate=self.leadership.is_leader if leader_only else lambda: True,
            )
            self._supervisor.start(name, periodic.run)

        config = self.config
        every("rescuer", self.rescuer.run_once, config.rescue_interval, leader_only=True)
        every("pruner", self.pruner.run_once, config.prune_interval, leader_only=True)
        every("expirer", Expirer(self.store).run_once, config.expire_interval, leader_only=True)
        every("table care", self._tend_tables, TEND_INTERVAL, leader_only=True)
        if self.cron_entries:
            scheduler = CronScheduler(
                self.store,
                list(self.cron_entries.values()),
                clock=self.clock,
                health=self.health_state,
                gate=self.leadership.is_leader,
                on_inserted=lambda job: self._wake_for([job]),
                look_every=config.poll_interval,
            )
            self._supervisor.start("cron", scheduler.run)
        if self._samples_queues:
            every("queue sampler", self._sample_queues, config.sample_interval, leader_only=False)
        every("node heartbeat", self._heartbeat, NODE_HEARTBEAT, leader_only=False)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start on enter, stop gracefully on exit: ``Starlette(lifespan=service.lifespan)``."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def hurry(self) -> None:
        """Cut a graceful stop short: requeue running jobs now."""
        self._hurry.set()
        for service in self._pipeline_services.values():
            service.hurry()

    async def _heartbeat(self, now: datetime) -> None:
        await self.store.record_node(
            NodeInfo(
                node=self.config.node,
                started_at=self._node_started_at,
                heartbeat_at=now,
                queues=tuple(self.runtimes),
                leader=self.leadership.is_leader(),
            )
        )

    async def _tend_tables(self, now: datetime) -> None:
        done = await self.store.tend_tables()
        if done:
            log.info("Tended the jobs table: %s", ", ".join(done))

    async def nodes(self) -> list[NodeInfo]:
        """Worker nodes that reported in within the last few heartbeats."""
        since = self.clock.now() - timedelta(seconds=NODE_HEARTBEAT * NODE_MISSED_BEATS)
        return await self.store.list_nodes(since)

    def _on_notified(self, queue: str) -> None:
        if not queue:
            self._wake_queues()
        elif (runtime := self.runtimes.get(queue)) is not None:
            runtime.notify()

    async def _sample_queues(self, now: datetime) -> None:
        """Tell ``queue.depth`` for every queue (only when something listens);
        a queue that emptied is told once more, with zeros."""
        if not self.telemetry.listening("queue.depth"):
            return
        infos = [info for info, _ in await self.queues(active_only=True)]
        seen = {info.name for info in infos}
        for gone in self._sampled_queues - seen:
            infos.append(QueueInfo(gone, False, 0, 0, 0, 0, 0, 0, None))
        self._sampled_queues = seen
        for info in infos:
            oldest = info.oldest_available_at
            self.telemetry.emit(
                "queue.depth",
                {
                    "available": info.available,
                    "scheduled": info.scheduled,
                    "running": info.running,
                    "oldest_age": max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
                },
                {"queue": info.name, "paused": info.paused},
            )

    def _held_here(self) -> set[int]:
        """The jobs this node holds: running, or their outcome being written."""
        return {job_id for runtime in self.runtimes.values() for job_id in runtime.held()}

    def _on_rescued(self, report: RescueReport) -> None:
        if report.requeued:
            self._wake_queues()
        if self.telemetry.listening("job.rescued"):
            self.telemetry.emit(
                "job.rescued",
                {"count": len(report.requeued) + len(report.failed)},
                {"job_ids": report.requeued, "failed_ids": report.failed, "node": self.config.node},
            )

    def _wake_queues(self) -> None:
        for runtime in self.runtimes.values():
            runtime.notify()

    def _queue_names(self) -> tuple[str, ...]:
        """The configured queues; when left at the default, plus any queue a
        registered task sends its jobs to. Naming queues (``--queues``) pins
        the node to exactly those: node affinity."""
        names = list(self.config.queues)
        if self.config.queues != DEFAULT_QUEUES:
            return tuple(names)
        for name in self.pipelines:
            if name not in names:
                names.append(name)
        for name in self.registry.names():
            spec = self.registry.get(name)
            if spec is not None and spec.queue and spec.queue not in names:
                names.append(spec.queue)
        return tuple(name for name in names if name not in self._pipeline_services)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` s, requeue the rest."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        grace = self.config.shutdown_grace if grace is None else grace
        runtimes = list(self.runtimes.values())
        if runtimes:
            log.info(
                "Stopping: no new jobs are claimed; waiting up to %.1f s for running jobs", grace
            )
        try:
            # Every part stops, whatever another part's stop raised.
            drained, *pipelines = await asyncio.gather(
                self._drain(runtimes, grace),
                *(service.stop(grace) for service in self._pipeline_services.values()),
                return_exceptions=True,
            )
            for name, outcome in zip(self._pipeline_services, pipelines, strict=True):
                if isinstance(outcome, BaseException):
                    log.error("Stopping: pipeline %s did not stop cleanly: %r", name, outcome)
            if isinstance(drained, BaseException):
                raise drained
        except StoreError as error:
            # Jobs not returned stay "running" under this node and are rescued
            # once its lock is released below (or their lease runs out).
            log.error("Stopping: could not return running jobs to the queue: %s", error)
        finally:
            await self._supervisor.stop()
            if self.runtimes:
                with contextlib.suppress(StoreError):
                    await self.store.forget_node(self.config.node)
            self.runtimes.clear()
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)
                self._threads = None
            if self._processes is not None:
                await self._processes.close()
                self._processes = None
            await self.store.close()
            self._started = False
            self._stopping = False

    async def _drain(self, runtimes: list[QueueRuntime], grace: float) -> None:
        await asyncio.gather(*(runtime.stop_claiming() for runtime in runtimes))
        await asyncio.gather(*(runtime.drain(grace, self._hurry) for runtime in runtimes))

    # -- submitting -------------------------------------------------------

    def build_job(self, request: JobRequest | dict[str, Any], /, **options: Any) -> NewJob:
        """The job ``request`` asks for, with its task's defaults.

        ``request`` is a :class:`JobRequest`, or a payload and ``options`` —
        :class:`JobRequest`'s fields (queue, priority, max_attempts, …),
        checked here. Raises :class:`JobRequestError` naming the first problem.
        """
        if not isinstance(request, JobRequest):
            request = job_request({"payload": request, **options})
        elif options:
            raise TypeError("give a JobRequest or a payload with options, not both")
        name = task_name(request.payload)
        queue = request.queue if request.queue is not None else self._task_queue(name)
        if queue in self._pipeline_services:
            routes = self.pipelines[queue].routes
            raise JobRequestError(
                f"queue {queue!r} keeps its jobs in a store of its own: submit them through "
                + (f"its routes ({routes}) or " if routes else "")
                + f"service.pipeline({queue!r})"
            )
        spec = self.registry.get(name)
        now = self.clock.now()
        return to_new_job(
            request,
            run_at=request.run_at
            if request.run_at is not None
            else now + timedelta(seconds=request.delay or 0),
            queue=queue,
            task=name,
            max_attempts=request.max_attempts
            or (spec.max_attempts if spec and spec.max_attempts else DEFAULT_MAX_ATTEMPTS),
            trace_context=self.tracing.trace_context() if self.tracing is not None else None,
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
        self._wake_for(jobs)
        return jobs

    async def submit_unique(self, new_job: NewJob) -> Insertion:
        """Store a job with a ``unique_key`` unless one with that key was stored
        within ``unique_period`` seconds; say which happened."""
        now = self.clock.now()
        since = now - timedelta(seconds=self.config.unique_period)
        insertion = await self.store.insert_unique(new_job, now, since)
        if insertion.outcome == "created":
            self._wake_for([insertion.job])
        return insertion

    def _wake_for(self, jobs: Sequence[Job]) -> None:
        runtimes = self.runtimes
        if runtimes:
            for job in jobs:
                runtime = runtimes.get(job.queue)
                if runtime is not None:
                    runtime.notify(job.run_at)

    async def enqueue(
        self, task: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        """Submit one job for ``task`` from Python; options as in :meth:`build_job`."""
        body = {"task": task, **(payload or {})}
        (job,) = await self.submit([self.build_job(body, **options)])
        return job

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
            self._stop_run(job_id, job.lease_token)
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
            self._stop_run(job_id)
        return done

    async def retry_jobs(self, ids: Sequence[int]) -> list[int]:
        """Queue again, due now, every one of ``ids`` that failed or was cancelled."""
        done = await self.store.retry_jobs(ids, self.clock.now())
        self._wake_queues()
        return done

    def _stop_run(self, job_id: int, lease_token: int | None = None) -> None:
        """Stop the run of a job just cancelled (while it held ``lease_token``,
        when known: then a claim still on its way is caught too)."""
        for runtime in self.runtimes.values():
            if runtime.stop_run(job_id, lease_token, "the job was cancelled"):
                return
        if self.runtimes and lease_token:
            claim = (job_id, lease_token)
            # Not here, or not yet: its claim may still be on its way back
            # from the store. The queues check claims against this for a while.
            now = asyncio.get_running_loop().time()
            for stale in [c for c, until in self._early_cancels.items() if until < now]:
                del self._early_cancels[stale]
            self._early_cancels[claim] = now + self.config.lease

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
            self._wake_for([job])
        return job

    async def pause_queue(self, name: str) -> None:
        """Keep the queue's jobs waiting (they are still accepted); survives restarts."""
        self._check_queue_name(name)
        if name in self._pipeline_services:
            return await self._pipeline_services[name].pause_queue(name)
        await self.store.set_paused(name, True)

    async def resume_queue(self, name: str) -> None:
        self._check_queue_name(name)
        if name in self._pipeline_services:
            return await self._pipeline_services[name].resume_queue(name)
        await self.store.set_paused(name, False)
        if (runtime := self.runtimes.get(name)) is not None:
            runtime.notify()

    async def queues(self, *, active_only: bool = False) -> list[tuple[QueueInfo, int | None]]:
        """Every known queue, with this node's concurrency for those it runs
        (``active_only``: see ``Store.list_queues``)."""
        now = self.clock.now()
        listing = await self.store.list_queues(now, active_only=active_only)
        known = {info.name: info for info in listing}
        for name in self.runtimes:
            known.setdefault(name, QueueInfo(name, False, 0, 0, 0, 0, 0, 0, None))
        listed = {
            name: (info, runtime.concurrency if (runtime := self.runtimes.get(name)) else None)
            for name, info in known.items()
            if name not in self._pipeline_services
        }
        for name, service in self._pipeline_services.items():
            for info, concurrency in await service.queues(active_only=active_only):
                if info.name == name:
                    listed[name] = (info, concurrency)
        return [listed[name] for name in sorted(listed)]

    @staticmethod
    def _check_queue_name(name: str) -> None:
        if not valid_queue_name(name):
            raise JobRequestError("a queue name is 1-100 letters, digits, '_', '-' or '.'")

    async def cron_schedule(self) -> list[tuple[CronEntry, datetime | None, datetime]]:
        """Every cron entry with its last recorded tick and its next one."""
        now = self.clock.now()
        recorded = await self.store.cron_ticks() if self.cron_entries else {}
        schedule = [
            (entry, recorded.get(entry.name), entry.next_tick(now))
            for entry in self.cron_entries.values()
        ]
        for service in self._pipeline_services.values():
            schedule += await service.cron_schedule()
        return schedule

    # -- reading ----------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """The job, or None if unknown, pruned or past its ``result_ttl``
        (exactly then, whenever the expirer next deletes it)."""
        job = await self.store.get_job(job_id)
        if job is not None and job.result_ttl is not None and job.expired(self.clock.now()):
            return None
        return job

    async def list_jobs(self, query: JobQuery) -> JobPage:
        return await self.store.list_jobs(query, self.clock.now())

    async def history(self, minutes: int = 60) -> list[tuple[datetime, int, int]]:
        """(minute, done, failed) for each of the last ``minutes`` minutes, oldest first."""
        now = self.clock.now().replace(second=0, microsecond=0)
        first = now - timedelta(minutes=minutes - 1)
        tally: dict[datetime, list[int]] = {
            first + timedelta(minutes=i): [0, 0] for i in range(minutes)
        }
        for minute, status, count in await self.store.finished_per_minute(first):
            bucket = tally.get(minute)
            if bucket is not None and status in ("done", "failed"):
                bucket[0 if status == "done" else 1] += count
        return [(minute, done, failed) for minute, (done, failed) in tally.items()]

    async def count_jobs(self) -> JobCounts:
        return await self.store.count_jobs(self.clock.now())

    def problems(self) -> dict[str, str]:
        """Parts that are down right now, and why (empty when healthy)."""
        problems = self.health_state.problems()
        if not self._started:
            problems["service"] = "not started"
        store_problem = self.store.problem()
        if store_problem is not None:
            problems["store"] = store_problem
        for name, service in self._pipeline_services.items():
            for part, problem in service.problems().items():
                problems[f"pipeline {name}: {part}"] = problem
        return problems

    @property
    def stale_outcomes(self) -> int:
        return sum(runtime.stale_outcomes for runtime in self.runtimes.values())


def _settings(config: ServiceConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
