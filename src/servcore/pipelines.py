"""Pipelines: named queues, each with its own worker pool (the seed's ``pipelines``).

A pipeline is a queue with settings of its own: how many of its jobs run at
once on a node, the handler for its jobs (the seed's per-pipeline worker),
a task set, and optionally a store of its own. Declared in Python::

    Service("sqlite:///jobs.db", pipelines=[
        Pipeline("email", concurrency=32, tasks="myapp.email:tasks", routes="/email_jobs"),
        Pipeline("media", concurrency=2, handler="myapp.media:transcode",
                 store="sqlite:///media.db", routes="/media_jobs"),
    ])

or in ``servcore.toml`` (see :mod:`servcore.config_file`). References to
Python objects may be given as ``"module:attribute"`` strings, imported when
the pipeline is added.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from servcore.errors import ConfigError
from servcore.jobs import valid_queue_name
from servcore.tasks import Handler, TaskRegistry

_ROUTE = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")
# The service's own routes: a pipeline's may not shadow them.
_RESERVED = (
    "/jobs",
    "/queues",
    "/cron",
    "/nodes",
    "/stats",
    "/health",
    "/metrics",
    "/openapi.json",
    "/dashboard",
)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One named queue and how it runs.

    ``concurrency``: its jobs run at once per node (default: the service's).
    ``handler``: runs its jobs whose task has no handler of its own.
    ``tasks``: a :class:`TaskRegistry` whose tasks send their jobs here.
    ``store``: a store URL of its own: its jobs, ids and workers live there,
    reached through :meth:`Service.pipeline` and its routes.
    ``routes``: where the seed's per-pipeline routes are mounted, e.g.
    ``"/email_jobs"`` (``POST /email_jobs``, ``GET /email_jobs/{id}``, …).
    """

    name: str
    concurrency: int | None = None
    handler: Handler | str | None = None
    tasks: TaskRegistry | str | None = None
    store: str | None = None
    routes: str | None = None

    def __post_init__(self) -> None:
        where = f"pipeline {self.name!r}"
        if not isinstance(self.name, str) or not valid_queue_name(self.name):
            raise ConfigError(f"{where}: a name is 1-100 letters, digits, '_', '-' or '.'")
        if self.concurrency is not None and not (
            isinstance(self.concurrency, int) and 1 <= self.concurrency <= 10_000
        ):
            raise ConfigError(f"{where}: concurrency must be between 1 and 10000")
        if self.routes is not None and not (
            isinstance(self.routes, str) and _ROUTE.match(self.routes)
        ):
            raise ConfigError(f"{where}: routes must be a path like '/email_jobs'")
        if self.routes is not None and any(self.routes.startswith(own) for own in _RESERVED):
            raise ConfigError(f"{where}: routes {self.routes!r} would shadow the service's own")
        if self.store is not None and (not isinstance(self.store, str) or not self.store):
            raise ConfigError(f"{where}: store must be a store URL")

    def resolved_handler(self) -> Handler | None:
        if self.handler is None or callable(self.handler):
            return self.handler
        found = import_reference(self.handler, f"pipeline {self.name!r}: handler")
        if not callable(found):
            raise ConfigError(f"pipeline {self.name!r}: handler {self.handler!r} is not callable")
        handler: Handler = found
        return handler

    def resolved_tasks(self) -> TaskRegistry | None:
        if self.tasks is None or isinstance(self.tasks, TaskRegistry):
            return self.tasks
        found = import_reference(self.tasks, f"pipeline {self.name!r}: tasks")
        if not isinstance(found, TaskRegistry):
            raise ConfigError(
                f"pipeline {self.name!r}: tasks {self.tasks!r} is not a servcore TaskRegistry"
            )
        return found


def import_reference(reference: str, what: str) -> Any:
    """The object ``"package.module:attribute"`` names; ConfigError if it can't be had."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what}: write it as module:attribute, not {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a SyntaxError in it, or whatever its import raised
        raise ConfigError(
            f"{what}: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    found = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"{what}: {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    return found
