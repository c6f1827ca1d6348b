"""Task handlers: the registry, the ``@task`` decorator, and handler outcomes.

A handler is ``def handler(job) -> result`` or ``async def handler(job) ->
result``; the job's ``payload["task"]`` picks it (the seed's ``perform_work``
pattern). Whatever it returns is stored as the job's JSON result. To steer the
job instead, raise :class:`Retry`, :class:`Discard` or :class:`Cancel`.

A running job can be cancelled (``POST /jobs/{id}/cancel``). An ``async def``
handler is cancelled outright (``asyncio.CancelledError`` at its current
``await``). A thread cannot be interrupted, so a plain ``def`` handler is
told: :func:`cancel_requested` turns true, and :func:`raise_if_cancelled`
raises :class:`Cancel`; a long handler calls one of them now and then. The
same happens when a handler overruns its timeout.
"""

from __future__ import annotations

import contextvars
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from servcore.clock import SYSTEM_CLOCK
from servcore.jobs import Job
from servcore.retry import Backoff
from servcore.timestamps import format_timestamp

Handler = Callable[[Job], Any]
HandlerT = TypeVar("HandlerT", bound=Handler)
# Where a handler runs: the event loop (async def), a thread (def), or a
# worker process (def, CPU-bound; a timeout or cancel kills the process).
ExecutorKind = Literal["async", "thread", "process"]


class Retry(Exception):
    """Ask for another attempt after ``after`` seconds (counts as an attempt)."""

    def __init__(self, after: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        if after is not None and not (math.isfinite(after) and after >= 0):
            raise ValueError("Retry(after=...) needs a finite number of seconds >= 0")
        self.after = after
        self.reason = reason


class Discard(Exception):
    """Fail the job now, with no further attempts."""

    def __init__(self, reason: str = "discarded by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class Cancel(Exception):
    """End the job as ``cancelled``: it should not run, and that is no error."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class CancelToken:
    """Set by the runtime when the job being run should stop; read by handlers."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    @property
    def requested(self) -> bool:
        return self.reason is not None


current_token: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar(
    "servcore_cancel_token", default=None
)


def cancel_requested() -> bool:
    """True once the job this handler is running for should stop."""
    token = current_token.get()
    return token is not None and token.requested


def raise_if_cancelled() -> None:
    """Raise :class:`Cancel` if the job this handler is running for should stop."""
    token = current_token.get()
    if token is not None and token.reason is not None:
        raise Cancel(token.reason)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A registered handler and the defaults its jobs get."""

    name: str
    handler: Handler
    is_async: bool
    queue: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    in_process: bool = False

    @property
    def executor(self) -> ExecutorKind:
        if self.in_process:
            return "process"
        return "async" if self.is_async else "thread"


async def default_handler(job: Job) -> dict[str, Any]:
    """Complete the job with the seed's result shape."""
    return {
        "status": "completed",
        "job_id": job.id,
        "processed_at": format_timestamp(SYSTEM_CLOCK.now()),
    }


def _refusing(problem: str) -> TaskSpec:
    """A handler that fails its job at once, with no retry, saying ``problem``."""

    async def refuse(job: Job) -> None:
        raise Discard(problem)

    return TaskSpec("", refuse, is_async=True)


def _is_async(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects too
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class TaskRegistry:
    """Task name → :class:`TaskSpec`, and what a job whose task has none gets.

    A job whose task has no handler runs the queue's handler (a pipeline's
    ``handler``) or the default one set with :meth:`set_default`. Without
    either, it runs the seed's demo handler only while no task is registered
    at all (the bare ``servcore serve``); once tasks are registered, such a
    job is a mistake (a typo, a missing ``task``): it is refused at submission
    and, if stored anyway, fails at once without retries (:meth:`missing`).
    """

    def __init__(self, default: Handler | None = None) -> None:
        self._specs: dict[str, TaskSpec] = {}
        chosen = default is not None
        default = default or default_handler
        self._default = TaskSpec("", default, _is_async(default))
        self._default_chosen = chosen
        self._queue_defaults: dict[str, TaskSpec] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        executor: ExecutorKind | None = None,
    ) -> TaskSpec:
        """Register ``handler`` for ``name``. ``executor`` defaults to what the
        handler is: ``async`` for ``async def``, ``thread`` for ``def``."""
        if not name:
            raise ValueError("a task needs a non-empty name")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"task {name!r}: max_attempts must be >= 1")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"task {name!r}: timeout must be > 0 seconds")
        if name in self._specs:
            raise ValueError(f"task {name!r} is already registered")
        is_async = _is_async(handler)
        if executor not in (None, "async", "thread", "process"):
            raise ValueError(f"task {name!r}: executor must be 'async', 'thread' or 'process'")
        if is_async and executor in ("thread", "process"):
            raise ValueError(f"task {name!r}: an async def handler runs on the event loop")
        if not is_async and executor == "async":
            raise ValueError(f"task {name!r}: executor 'async' needs an async def handler")
        if executor == "process":
            _check_importable(name, handler)
        spec = TaskSpec(
            name,
            handler,
            is_async,
            queue,
            max_attempts,
            timeout,
            backoff,
            in_process=executor == "process",
        )
        self._specs[name] = spec
        return spec

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
        """Decorator: ``@registry.task("send_email", max_attempts=5)``."""

        def decorate(handler: HandlerT) -> HandlerT:
            task_name = name or str(getattr(handler, "__name__", ""))
            self.register(
                task_name,
                handler,
                queue=queue,
                max_attempts=max_attempts,
                timeout=timeout,
                backoff=backoff,
                executor=executor,
            )
            return handler

        return decorate

    def set_default(self, handler: Handler) -> None:
        """Replace the handler for jobs whose task has none registered."""
        self._default = TaskSpec("", handler, _is_async(handler))
        self._default_chosen = True

    def set_queue_default(self, queue: str, handler: Handler) -> None:
        """The handler for ``queue``'s jobs whose task has none registered (the
        seed's per-pipeline worker)."""
        self._queue_defaults[queue] = TaskSpec("", handler, _is_async(handler), queue)

    def resolve(self, name: str, queue: str | None = None) -> TaskSpec:
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if queue is not None and (queue_default := self._queue_defaults.get(queue)):
            return queue_default
        problem = self.missing(name, queue)
        return _refusing(problem) if problem is not None else self._default

    def missing(self, name: str, queue: str | None = None) -> str | None:
        """Why a ``name`` job of ``queue`` has no handler here, or None when it
        has one (its own, the queue's, the chosen default, or the demo)."""
        if name in self._specs or not self._specs or self._default_chosen:
            return None
        if queue is not None and queue in self._queue_defaults:
            return None
        known = f"(known: {', '.join(self.names())})"
        if not name:
            return f"no handler for a job without a 'task' in its payload {known}"
        return f"no handler for task {name!r} {known}"

    def include(self, other: TaskRegistry, *, queue: str | None = None) -> None:
        """Register every task of ``other`` here; ``queue`` for those without one."""
        for name in other.names():
            spec = other._specs[name]
            self.register(
                name,
                spec.handler,
                queue=spec.queue or queue,
                max_attempts=spec.max_attempts,
                timeout=spec.timeout,
                backoff=spec.backoff,
                executor=spec.executor,
            )

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    @property
    def uses_processes(self) -> bool:
        return any(spec.in_process for spec in self._specs.values())


def _check_importable(name: str, handler: Handler) -> None:
    """A process handler travels by reference: it must be a module-level function."""
    qualname = str(getattr(handler, "__qualname__", ""))
    if not getattr(handler, "__module__", None) or not qualname or "<" in qualname:
        raise ValueError(
            f"task {name!r}: a process handler must be a module-level function "
            "(worker processes import it by name)"
        )
