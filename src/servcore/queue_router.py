"""Which queue a job goes to, which service holds that queue, how many run at once.

The one place that knows the pipelines: a queue either lives in the
service's own store, or belongs to a pipeline with a store of its own, which
runs as a service of its own (see :mod:`servcore.pipelines`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from servcore.config import DEFAULT_QUEUES, ServiceConfig
from servcore.errors import ConfigError
from servcore.jobs import DEFAULT_QUEUE
from servcore.pipelines import Pipeline
from servcore.tasks import TaskRegistry

if TYPE_CHECKING:
    from servcore.service import Service


class QueueRouter:
    def __init__(self, registry: TaskRegistry) -> None:
        self.registry = registry
        self.pipelines: dict[str, Pipeline] = {}
        # Pipelines with a store of their own, by queue: the services holding them.
        self.own_stores: dict[str, Service] = {}

    def declare(self, pipeline: Pipeline) -> None:
        """Take ``pipeline``'s queue, tasks and handler (its own store, if any,
        is added by the caller with :meth:`hold_apart`)."""
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

    def hold_apart(self, queue: str, service: Service) -> None:
        """Queue ``queue``'s jobs live in ``service`` (a pipeline's own store)."""
        self.own_stores[queue] = service

    def task_queue(self, task: str) -> str:
        """The queue a ``task`` job goes to when the request names none."""
        spec = self.registry.get(task)
        return spec.queue if spec and spec.queue else DEFAULT_QUEUE

    def known_queues(self, config: ServiceConfig) -> list[str]:
        """Every queue this service knows of: ``default``, the pipelines, the
        queues of registered tasks and those this node is told to run."""
        names = {DEFAULT_QUEUE, *self.pipelines, *config.runtime.queues}
        for name in self.registry.names():
            spec = self.registry.get(name)
            if spec is not None and spec.queue:
                names.add(spec.queue)
        return sorted(names)

    def undeclared(self, queue: str, config: ServiceConfig) -> str | None:
        """Why a job may not go to ``queue``, or None. A service that declares
        pipelines knows its queues, so another name is a mistake (a typo); with
        none declared, queues are open: any name makes a queue."""
        if not self.pipelines:
            return None
        known = self.known_queues(config)
        if queue in known:
            return None
        return f"no queue {queue!r} is declared (known: {', '.join(known)})"

    def held_apart(self, queue: str) -> Service | None:
        """The service of the pipeline that keeps ``queue`` in a store of its own."""
        return self.own_stores.get(queue)

    def concurrency_of(self, queue: str, config: ServiceConfig) -> int:
        """Jobs of ``queue`` run at once on this node: the environment's
        ``SERVCORE_QUEUE_CONCURRENCY``, else the pipeline's, else the service's."""
        configured = config.runtime.queue_concurrency.get(queue)
        if configured is not None:
            return configured
        pipeline = self.pipelines.get(queue)
        if pipeline is not None and pipeline.concurrency is not None:
            return pipeline.concurrency
        return config.runtime.concurrency

    def runs_queue(self, name: str, config: ServiceConfig) -> bool:
        return config.runtime.queues == DEFAULT_QUEUES or name in config.runtime.queues

    def queue_names(self, config: ServiceConfig) -> tuple[str, ...]:
        """The configured queues; when left at the default, plus any queue a
        registered task sends its jobs to. Naming queues (``--queues``) pins
        the node to exactly those: node affinity. Queues held apart excluded."""
        names = list(config.runtime.queues)
        if config.runtime.queues != DEFAULT_QUEUES:
            return tuple(names)
        for name in self.pipelines:
            if name not in names:
                names.append(name)
        for name in self.registry.names():
            spec = self.registry.get(name)
            if spec is not None and spec.queue and spec.queue not in names:
                names.append(spec.queue)
        return tuple(name for name in names if name not in self.own_stores)

    def pipeline_config(self, pipeline: Pipeline, config: ServiceConfig) -> ServiceConfig:
        """The settings of the service holding ``pipeline`` apart."""
        assert pipeline.store is not None
        # Its events reach the parent's telemetry: counted once, there.
        return config.with_overrides(
            store=pipeline.store,
            queues=(pipeline.name,),
            concurrency=self.concurrency_of(pipeline.name, config),
            telemetry=replace(config.telemetry, metrics=False, metrics_port=None, tracing=False),
        )
