"""The composition root: one object that holds the store, the task registry
and the parts, and starts and stops them in the right order.

    service = Service("sqlite:///jobs.db")

    @service.task("send_email", max_attempts=5)
    async def send_email(job): ...

    await service.start()
    await service.enqueue("send_email", {"to": "a@example.com"})
    ...
    await service.stop()      # graceful: see QueueRuntime.drain

A service is a :class:`~servcore.job_client.JobClient` (submit, control,
read — all an app process needs) with a
:class:`~servcore.worker_node.WorkerNode` (queue runtimes, supervision,
maintenance) and a :class:`~servcore.queue_router.QueueRouter` (which
pipeline or store owns a queue); this module starts and stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from servcore.clock import SYSTEM_CLOCK, Clock
from servcore.config import ServiceConfig
from servcore.config_file import load_configuration
from servcore.cron import CronEntry
from servcore.cron.entry import REFUSED_OPTIONS
from servcore.errors import ConfigError
from servcore.job_client import JobClient
from servcore.job_reads import JobCounts, QueueInfo
from servcore.job_requests import JobRequestError
from servcore.logs import log_unless_configured
from servcore.metrics import Metrics
from servcore.pipelines import Pipeline
from servcore.queue_router import QueueRouter
from servcore.retry import Backoff
from servcore.runtime.queue import QueueRuntime
from servcore.sampled import Sampled
from servcore.service_telemetry import ServiceTelemetry
from servcore.store import store_from_url
from servcore.store.base import Store, StoreError
from servcore.store.instrumented import instrumented
from servcore.supervisor import Health
from servcore.tasks import ExecutorKind, Handler, HandlerT, TaskRegistry
from servcore.telemetry import Telemetry
from servcore.tracing import Tracing
from servcore.worker_node import WorkerNode

log = logging.getLogger("servcore")
WARNINGS_WAIT = 0.5  # seconds /health waits for the reads behind its warnings


class Service(JobClient):
    """See the module docstring: the job client of its store (its verbs are
    :class:`~servcore.job_client.JobClient`'s), with a worker node and pipelines."""

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
        # Without a config of its own, a service reads what the CLI reads:
        # the configuration file, then the environment (explicit arguments win).
        loaded = load_configuration() if config is None else None
        if config is None:
            assert loaded is not None
            config = ServiceConfig().with_overrides(**loaded.settings)
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
        self.router = QueueRouter(self.registry)
        self.cron_entries: dict[str, CronEntry] = {}
        self.observed = ServiceTelemetry(
            self.telemetry,
            clock,
            known_task=lambda task: self.registry.get(task) is not None,
            running_jobs=self._running_jobs,
            active_queues=self._active_queues,
            job_totals=self._job_totals,
        )
        self._samples_queues = True  # not a pipeline's own: its parent samples every queue
        self._warnings: Sampled[dict[str, str]] = Sampled(self._read_warnings, {}, clock)
        self._started = False
        self._stopping = False
        self._build_parts()
        super().__init__(
            self.store,
            self.config,
            clock=clock,
            router=self.router,
            node=self.node,
            cron_entries=self.cron_entries,
            trace_context=self.observed.trace_context,
            open_for_calls=lambda: self.start(workers=False),
        )
        for pipeline in pipelines:
            self.add_pipeline(pipeline)
        # The configuration file this service has read, if any (the CLI does
        # not lay it over again).
        self.config_file: Path | None = None
        if loaded is not None and loaded.file is not None:
            loaded.file.declare(self)
            self.config_file = loaded.file.path
        self.observed.apply(self.config.node, self.config.telemetry)

    def _build_parts(self) -> None:
        """The worker node for the current store and settings."""
        self.node = WorkerNode(
            self.store,
            self.config,
            registry=self.registry,
            clock=self.clock,
            telemetry=self.telemetry,
            health=self.health_state,
        )

    def configure(self, **overrides: Any) -> None:
        """Change settings before :meth:`start` (the CLI applies env and flags here)."""
        if self._started:
            raise RuntimeError("configure() must be called before start()")
        config = self.config.with_overrides(**overrides)
        if config.store != self.config.store:
            self.store = instrumented(store_from_url(config.store), self.telemetry)
        self.config = config
        self._build_parts()
        self.observed.apply(config.node, config.telemetry)
        for name, service in self.router.own_stores.items():
            pipeline_config = self.router.pipeline_config(self.router.pipelines[name], config)
            service.configure(**pipeline_config.settings())

    # -- tasks, pipelines, cron -------------------------------------------

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

    def add_pipeline(self, pipeline: Pipeline) -> None:
        """Run ``pipeline``'s queue with its own settings (see :mod:`servcore.pipelines`)."""
        if self._started:
            raise RuntimeError("add_pipeline() must be called before start()")
        self.router.declare(pipeline)
        if pipeline.store is not None:
            apart = Service(
                pipeline.store,
                config=self.router.pipeline_config(pipeline, self.config),
                registry=self.registry,
                clock=self.clock,
                telemetry=self.telemetry,
            )
            apart.observed.follow(self.observed)
            apart._samples_queues = False
            self.router.hold_apart(pipeline.name, apart)

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return self.router.pipelines

    def pipeline(self, name: str) -> Service:
        """The service that holds queue ``name``'s jobs: this one, or, for a
        pipeline with a store of its own, that pipeline's."""
        return self.router.held_apart(name) or self

    def concurrency_of(self, queue: str) -> int:
        """Jobs of ``queue`` run at once on this node (see ``QueueRouter.concurrency_of``)."""
        return self.router.concurrency_of(queue, self.config)

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
        queue = options.get("queue") or self.router.task_queue(task)
        if (apart := self.router.held_apart(queue)) is not None:
            return apart.cron(
                expression, task, name=name, payload=payload, timezone=timezone, **options
            )
        for refused in REFUSED_OPTIONS:
            if refused in options:
                raise JobRequestError(f"a cron entry sets its own '{refused}'")
        # Not build_job: the entry may be declared (in the configuration
        # file) before its task is registered; a tick of an unknown task fails.
        template = self.job_template({"task": task, **(payload or {})}, **options)
        entry = CronEntry.declare(name or task, expression, timezone, template, self.cron_entries)
        self.cron_entries[entry.name] = entry
        return entry

    # -- telemetry --------------------------------------------------------

    @property
    def metrics(self) -> Metrics | None:
        return self.observed.metrics

    @property
    def tracing(self) -> Tracing | None:
        return self.observed.tracing

    def enable_tracing(self, tracer_provider: Any = None) -> None:
        """OpenTelemetry spans for requests and job runs (see :mod:`servcore.tracing`);
        ``tracer_provider`` defaults to the global one."""
        self.observed.enable_tracing(tracer_provider)
        self.config = self.config.with_overrides(tracing=True)

    def _running_jobs(self) -> dict[str, int]:
        running = self.node.running()
        for service in self.router.own_stores.values():
            running.update(service._running_jobs())
        return running

    # -- life cycle -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    async def start(self, *, workers: bool = True, queues: Sequence[str] | None = None) -> None:
        """Open the store and, with ``workers``, start running queues."""
        if self._started:
            return
        log_unless_configured()
        if workers:
            self._check_cron_tasks()
        self.store.bound_waits(self.config.runtime.lease)
        await self.store.open()
        self.loop = asyncio.get_running_loop()
        self._started = True
        self._stopping = False
        try:
            for name, service in self.router.own_stores.items():
                # Its store opens either way: its routes answer on API nodes too.
                runs_it = workers and (queues is None or name in queues)
                await service.start(workers=runs_it and self.router.runs_queue(name, self.config))
            if workers:
                names = (
                    tuple(queues) if queues is not None else self.router.queue_names(self.config)
                )
                concurrency = {
                    name: self.concurrency_of(name)
                    for name in names
                    if self.router.held_apart(name) is None
                }
                await self.node.start(
                    concurrency,
                    cron_entries=list(self.cron_entries.values()),
                    list_queues=self._active_queues if self._samples_queues else None,
                )
        except BaseException:
            # Half started is worse than stopped: undo it all, then say why.
            await self.stop(grace=0)
            raise

    def _check_cron_tasks(self) -> None:
        """Every cron entry's task has a handler by now (entries may be declared
        before their tasks are registered): else every tick would fail."""
        for entry in self.cron_entries.values():
            problem = self.registry.missing(entry.template.task, entry.template.queue)
            if problem is not None:
                raise ConfigError(f"cron entry {entry.name!r}: {problem}")

    async def _active_queues(self) -> list[QueueInfo]:
        return [info for info, _ in await self.queues(active_only=True)]

    async def _job_totals(self) -> JobCounts:
        """Jobs by status in this store and those of pipelines held apart."""
        apart = [service._job_totals() for service in self.router.own_stores.values()]
        return JobCounts.sum([await self.count_jobs(), *await asyncio.gather(*apart)])

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
        self.node.hurry()
        for service in self.router.own_stores.values():
            service.hurry()

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` s, requeue the rest."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        grace = self.config.runtime.shutdown_grace if grace is None else grace
        apart = self.router.own_stores
        try:
            # Every part stops, whatever another part's stop raised.
            drained, *pipelines = await asyncio.gather(
                self.node.drain(grace),
                *(service.stop(grace) for service in apart.values()),
                return_exceptions=True,
            )
            for name, outcome in zip(apart, pipelines, strict=True):
                if isinstance(outcome, BaseException):
                    log.error("Stopping: pipeline %s did not stop cleanly: %r", name, outcome)
            if isinstance(drained, BaseException):
                raise drained
        except StoreError as error:
            # Jobs not returned stay "running" under this node and are rescued
            # once its lock is released below (or their lease runs out).
            log.error("Stopping: could not return running jobs to the queue: %s", error)
        finally:
            await self._warnings.close()
            await self.node.shut_down()
            await self.observed.close()
            await self.store.close()
            self.loop = None
            self._started = False
            self._stopping = False

    def problems(self) -> dict[str, str]:
        """Parts that are down right now, and why (empty when healthy)."""
        problems = self.health_state.problems()
        if not self._started:
            problems["service"] = "not started"
        store_problem = self.store.problem()
        if store_problem is not None:
            problems["store"] = store_problem
        for name, service in self.router.own_stores.items():
            for part, problem in service.problems().items():
                problems[f"pipeline {name}: {part}"] = problem
        return problems

    async def warnings(self, wait: float = WARNINGS_WAIT) -> dict[str, str]:
        """What looks wrong though nothing is down (``/health``'s ``warnings``):
        queues with jobs ready for over a minute that no live node runs. Read
        at most once per ``sample_interval``; a caller waits for a read at
        most ``wait`` s, then gets the last one."""
        if not self._started:
            return {}
        return await self._warnings.get(self.config.telemetry.sample_interval, wait)

    async def _read_warnings(self) -> dict[str, str]:
        flagged = await self.unserved_queues()
        now = self.clock.now()
        return {
            f"queue {name}": (
                f"{info.available} job(s) ready, the oldest for "
                f"{(now - info.oldest_available_at).total_seconds():.0f} s, "
                "and no live worker node runs this queue"
                if info.oldest_available_at is not None
                else "no live worker node runs this queue"
            )
            for name, info in flagged.items()
        }

    @property
    def runtimes(self) -> dict[str, QueueRuntime]:
        """This node's queue runtimes by queue (its worker side is ``node``)."""
        return self.node.runtimes
