"""Runs one job through its handler and says how it ended.

The steps, in order: resolve the handler → apply the timeout → perform →
classify the outcome (result, retry, discard, cancel, error). ``async def``
handlers run on the event loop; plain ``def`` handlers in a thread pool, so a
blocking handler never stalls the loop. A thread cannot be killed: on timeout
the job is failed, the handler is told to stop (``cancel_requested()``), and
the thread's eventual answer is ignored. Tasks registered with
``executor="process"`` run in a worker process (:mod:`.processes`), which a
timeout or a cancel kills: there the work really stops.
"""

from __future__ import annotations

import asyncio
import contextvars
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from servcore.clock import Clock
from servcore.config import DEFAULT_MAX_RESULT_BYTES
from servcore.jobs import Job, JobError, describe_error
from servcore.retry import Backoff
from servcore.runtime.processes import ProcessPool, ProcessTaskError
from servcore.store.base import Completion, Failure
from servcore.tasks import (
    Cancel,
    CancelToken,
    Discard,
    Retry,
    TaskRegistry,
    TaskSpec,
    current_token,
)

# However a backoff is configured, a retry is at most a year away.
MAX_RETRY_DELAY = 365 * 24 * 3600.0
_encode = msgspec.json.encode
_decode = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended: exactly one of the two is set."""

    completion: Completion | None = None
    failure: Failure | None = None


class Executor:
    def __init__(
        self,
        registry: TaskRegistry,
        clock: Clock,
        threads: ThreadPoolExecutor,
        default_backoff: Backoff,
        processes: ProcessPool | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._threads = threads
        self._default_backoff = default_backoff
        self._processes = processes
        self._max_result_bytes = max_result_bytes

    async def execute(self, job: Job, token: CancelToken | None = None) -> Outcome:
        """Run ``job``; ``token`` is how the runtime tells a thread handler to stop."""
        spec = self._registry.resolve(job.task, job.queue)
        timeout = job.timeout if job.timeout is not None else spec.timeout
        if spec.in_process:
            return await self._execute_in_process(spec, job, deadline_s=timeout)
        token = token or CancelToken()
        deadline: asyncio.Timeout | None = None
        try:
            if timeout is None:
                value = await self._perform(spec, job, token)
            else:
                async with asyncio.timeout(timeout) as deadline:
                    value = await self._perform(spec, job, token)
            result = _json_copy(value, self._max_result_bytes)
        except TimeoutError as error:
            if deadline is not None and deadline.expired():
                message = f"timed out after {timeout:g} s"
                token.request(message)
                return self._failed(job, spec, message, None)
            return self._failed(job, spec, describe_error(error), traceback.format_exc())
        except _Unserialisable as error:
            return self._failed(job, spec, str(error), None, final=True)
        except _TooLarge as error:
            # Like any failed attempt (retried while attempts remain): the size
            # of a result may depend on what the handler fetched this time.
            return self._failed(job, spec, str(error), None)
        except Retry as retry:
            return self._failed(job, spec, retry.reason, None, delay=retry.after)
        except Discard as discard:
            return self._failed(job, spec, discard.reason, None, final=True)
        except Cancel as cancel:
            return self._failed(job, spec, cancel.reason, None, final=True, cancel=True)
        except Exception as error:
            return self._failed(job, spec, describe_error(error), traceback.format_exc())
        return Outcome(completion=Completion(job.id, job.lease_token, self._clock.now(), result))

    async def _execute_in_process(
        self, spec: TaskSpec, job: Job, *, deadline_s: float | None
    ) -> Outcome:
        if self._processes is None:
            raise RuntimeError("no process pool: the service was started without workers")
        try:
            ran = await self._processes.run(spec.handler, job, deadline_s)
        except ProcessTaskError as error:
            return self._failed(job, spec, str(error), None, final=True)
        if ran.kind == "value":
            try:
                _check_size(ran.value, self._max_result_bytes)
            except _TooLarge as error:
                return self._failed(job, spec, str(error), None)
            return Outcome(
                completion=Completion(job.id, job.lease_token, self._clock.now(), ran.value)
            )
        if ran.kind == "retry":
            return self._failed(job, spec, ran.message, None, delay=ran.retry_after)
        final = ran.kind in ("discard", "cancel", "unserialisable")
        return self._failed(
            job, spec, ran.message, ran.traceback, final=final, cancel=ran.kind == "cancel"
        )

    def runs_in_thread(self, job: Job) -> bool:
        spec = self._registry.resolve(job.task, job.queue)
        return not spec.is_async and not spec.in_process

    def crashed(self, job: Job, error: Exception) -> Outcome:
        """The outcome for a job whose execution broke outside its handler."""
        return self._failed(
            job,
            self._registry.resolve(job.task, job.queue),
            describe_error(error),
            traceback.format_exc(),
        )

    async def _perform(self, spec: TaskSpec, job: Job, token: CancelToken) -> Any:
        if spec.is_async:
            current_token.set(token)  # in this worker slot's own context
            return await spec.handler(job)
        context = contextvars.copy_context()
        context.run(current_token.set, token)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, context.run, spec.handler, job)

    def _failed(
        self,
        job: Job,
        spec: TaskSpec,
        message: str,
        trace: str | None,
        *,
        delay: float | None = None,
        final: bool = False,
        cancel: bool = False,
    ) -> Outcome:
        now = self._clock.now()
        retry_at: datetime | None = None
        if not final and job.attempt < job.max_attempts:
            if delay is None:
                delay = self._backoff(job, spec).delay(job.attempt)
            retry_at = now + timedelta(seconds=min(delay, MAX_RETRY_DELAY))
        error = JobError(job.attempt, now, message, trace, job.started_at)
        return Outcome(failure=Failure(job.id, job.lease_token, error, retry_at, cancel))

    def _backoff(self, job: Job, spec: TaskSpec) -> Backoff:
        shape = spec.backoff or self._default_backoff
        if job.backoff is not None:
            return Backoff(job.backoff, shape.factor, shape.max_delay, shape.jitter)
        return shape


class _Unserialisable(Exception):
    pass


class _TooLarge(Exception):
    pass


def _json_copy(value: Any, max_bytes: int) -> Any:
    """The result as it will read back from any store: plain JSON values, at
    most ``max_bytes`` of them."""
    if value is None or isinstance(value, int | float | bool):
        return value
    try:
        encoded = _encode(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise _Unserialisable(
            f"handler returned a value that is not JSON-serialisable "
            f"({type(value).__name__}): {error}"
        ) from None
    _check_encoded(encoded, max_bytes)
    return value if isinstance(value, str) else _decode(encoded)


def _check_size(value: Any, max_bytes: int) -> None:
    """A JSON value (from a process handler) at most ``max_bytes`` encoded."""
    if not (value is None or isinstance(value, int | float | bool)):
        _check_encoded(_encode(value), max_bytes)


def _check_encoded(encoded: bytes, max_bytes: int) -> None:
    if len(encoded) > max_bytes:
        raise _TooLarge(
            f"handler returned a result of {len(encoded)} bytes as JSON, over the limit of "
            f"{max_bytes} (max_result_bytes): store large outputs elsewhere (a file, object "
            "storage) and return a reference to them"
        )
