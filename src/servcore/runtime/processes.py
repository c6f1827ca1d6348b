"""A small process pool for CPU-bound handlers whose timeouts really stop the work.

The executor runs plain ``def`` handlers in threads, and a thread cannot be
killed: a handler that spins past its timeout keeps burning a core. Here each
job runs in a worker process instead, and a timeout or a cancellation kills
that one process (SIGKILL) — the work stops, and the next job that needs a
worker gets a fresh one.

Why not :class:`concurrent.futures.ProcessPoolExecutor`? It cannot stop one
task: killing one of its processes marks the whole pool broken and fails every
other pending task. This pool owns its processes one by one, so losing one
costs only the job that ran in it.

A worker loops: receive ``(handler, job)`` (pickled; the handler by reference,
so it must be a module-level function the worker can import), run
``handler(job)``, send back a plain tuple. Results cross as JSON bytes
(``msgspec``), outcomes as strings: exception objects never cross, since
:class:`~servcore.tasks.Retry` and friends do not survive a pickle round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec

from servcore.errors import ServcoreError
from servcore.jobs import Job, describe_error
from servcore.tasks import Cancel, Discard, Retry

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

WORKER_NAME = "servcore-process-worker"
# The kernel keeps 15 bytes of a process's own name (what ps and top show).
_KERNEL_NAME = "servcore-worker"
# How long a killed or exiting worker gets to be reaped.
_REAP_WAIT = 5.0
# How long close() lets idle workers exit on their own before killing them.
_CLOSE_WAIT = 2.0

ResultKind = Literal[
    "value", "retry", "discard", "cancel", "error", "timeout", "crashed", "unserialisable"
]
# What a worker sends back: kind, JSON bytes, message, traceback, retry_after.
_Reply = tuple[str, bytes | None, str, str | None, float | None]


class ProcessTaskError(ServcoreError):
    """The handler or the job cannot be sent to a worker process."""


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How one job ended in a worker process. ``value`` is the decoded JSON result."""

    kind: ResultKind
    value: Any = None
    message: str = ""
    traceback: str | None = None
    retry_after: float | None = None


@dataclass(eq=False, slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection


class ProcessPool:
    """At most ``size`` worker processes, started on first use and reused."""

    def __init__(self, size: int, *, start_method: str = "spawn") -> None:
        if size < 1:
            raise ValueError("a process pool needs size >= 1")
        if start_method == "fork":
            # A forked worker would inherit the event loop, its threads and the
            # parent's end of every worker's pipe (so no EOF when it dies).
            raise ValueError("use the 'spawn' or 'forkserver' start method, not 'fork'")
        context = multiprocessing.get_context(start_method)
        # A spawned worker's parent is this process; a forkserver's is the server.
        self._parent = os.getpid() if start_method == "spawn" else 0
        self._context = cast("SpawnContext | ForkServerContext", context)
        self._size = size
        self._taken = 0  # slots held by runs (granted, maybe not yet resumed)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        self._reaping: set[asyncio.Task[None]] = set()

    @property
    def alive(self) -> int:
        """How many worker processes are alive."""
        return sum(w.process.is_alive() for w in (*self._idle, *self._busy))

    @property
    def waiting(self) -> int:
        """How many runs wait for a worker."""
        return sum(not waiter.done() for waiter in self._waiters)

    async def run(
        self,
        handler: Callable[[Job], Any],
        job: Job,
        timeout: float | None,  # noqa: ASYNC109 - the deadline kills the worker, not just the wait
    ) -> ProcessResult:
        """Run ``handler(job)`` in a worker process; ``timeout`` kills it."""
        if self._closed:
            raise RuntimeError("the process pool is closed")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be > 0 seconds or None")
        message = _work_message(handler, job)
        worker = await self._checkout()
        try:
            result = await self._exchange(worker, message, timeout)
        except BaseException:  # cancelled mid-job: the work must stop too
            self._checkin(worker, keep=False)
            raise
        self._checkin(worker, keep=result.kind not in ("timeout", "crashed"))
        return result

    async def close(self) -> None:
        """Stop every worker: idle ones exit, busy ones are killed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the process pool is closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.conn.close()  # the worker sees EOF and exits
        for worker in self._busy:
            worker.process.kill()  # its run reports "crashed" and cleans up
        try:
            await _wait_exits((w.process for w in idle), _CLOSE_WAIT)
        finally:
            for worker in idle:
                self._retire(worker)  # kills the ones that did not exit in time
        # Their runs reap them and hand them back (a second waiter on the same
        # sentinel would displace the run's).
        for _ in range(int(_REAP_WAIT / 0.01)):
            if not self._busy:
                break
            await asyncio.sleep(0.01)
        if self._reaping:
            await asyncio.wait(self._reaping)

    async def _checkout(self) -> _Worker:
        """Wait (first come, first served) for a slot, then take or start a worker."""
        if self._taken < self._size and not self._waiters:
            self._taken += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._release_slot()  # granted just as we were cancelled: pass it on
                raise
        if self._closed:
            self._release_slot()
            raise RuntimeError("the process pool is closed")
        try:
            worker = self._idle_worker() or self._start()
        except BaseException:
            self._release_slot()
            raise
        self._busy.add(worker)
        return worker

    def _checkin(self, worker: _Worker, *, keep: bool) -> None:
        self._busy.discard(worker)
        if keep and not self._closed:
            self._idle.append(worker)
        else:
            self._retire(worker)
        self._release_slot()

    def _retire(self, worker: _Worker) -> None:
        reaping = _retire(worker)
        if reaping is not None:
            self._reaping.add(reaping)
            reaping.add_done_callback(self._reaping.discard)

    def _release_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._taken -= 1

    def _idle_worker(self) -> _Worker | None:
        while self._idle:
            worker = self._idle.pop()  # the most recently used: warm caches
            if worker.process.is_alive():
                return worker
            self._retire(worker)  # died while idle (killed from outside)
        return None

    def _start(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, list(sys.path), self._parent),
            name=WORKER_NAME,
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()  # the worker holds the only copy: its death is our EOF
        return _Worker(process, parent_end)

    async def _exchange(
        self, worker: _Worker, message: bytes, limit: float | None
    ) -> ProcessResult:
        loop = asyncio.get_running_loop()
        try:
            worker.conn.send_bytes(message)
        except OSError:
            return await self._crashed(worker)
        readable: asyncio.Future[None] = loop.create_future()
        fd = worker.conn.fileno()
        loop.add_reader(fd, _wake, readable)
        try:
            async with asyncio.timeout(limit):
                await readable
        except TimeoutError:
            expired = True
        else:
            expired = False
        finally:
            loop.remove_reader(fd)
        if expired:
            worker.process.kill()
            await _wait_exits([worker.process], _REAP_WAIT)
            return ProcessResult("timeout", message=f"timed out after {limit:g} s")
        try:
            reply: _Reply = worker.conn.recv()
        except (EOFError, OSError):
            return await self._crashed(worker)
        return _result(reply)

    async def _crashed(self, worker: _Worker) -> ProcessResult:
        await _wait_exits([worker.process], _REAP_WAIT)
        code = worker.process.exitcode
        if code is None:
            message = "worker process closed its connection without exiting"
        else:
            message = f"worker process exited with code {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    message += f" ({signal.Signals(-code).name})"
        if self._closed:
            message += ": the process pool was closed"
        return ProcessResult("crashed", message=message)


def _work_message(handler: Callable[[Job], Any], job: Job) -> bytes:
    if inspect.iscoroutinefunction(handler):
        raise ProcessTaskError(f"handler must be a plain (not async) function: {handler!r}")
    try:
        pickle.dumps(handler)
    except Exception as error:
        raise ProcessTaskError(
            "handler must be a module-level function importable by worker processes: "
            f"{handler!r} ({error})"
        ) from error
    try:
        return pickle.dumps((handler, job))
    except Exception as error:
        message = f"job {job.id} cannot be sent to a worker process: {error}"
        raise ProcessTaskError(message) from error


def _result(reply: _Reply) -> ProcessResult:
    kind, body, message, trace, retry_after = reply
    value = msgspec.json.decode(body) if body is not None else None
    return ProcessResult(cast(ResultKind, kind), value, message, trace, retry_after)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait_exits(processes: Iterable[BaseProcess], within: float) -> None:
    """Wait up to ``within`` seconds for the processes to exit, and reap those that did.

    A process's sentinel turns readable as it closes its files on the way out,
    a moment before it can be reaped: the join after it is that moment.
    """
    loop = asyncio.get_running_loop()
    exits: dict[BaseProcess, asyncio.Future[None]] = {}
    try:
        for process in processes:
            exited: asyncio.Future[None] = loop.create_future()
            loop.add_reader(process.sentinel, _wake, exited)
            exits[process] = exited
        if exits:
            await asyncio.wait(exits.values(), timeout=within)
    finally:
        for process in exits:
            loop.remove_reader(process.sentinel)
    for process, exited in exits.items():
        if exited.done():
            process.join(_REAP_WAIT)


def _retire(worker: _Worker) -> asyncio.Task[None] | None:
    """Close the pipe, kill the process if it still runs, and reap it — off the
    event loop's back: a large process takes a while to die. The task reaping
    it, if it had not died yet."""
    worker.conn.close()
    process = worker.process
    if process.exitcode is None:
        process.kill()
    if process.exitcode is None:
        return asyncio.get_running_loop().create_task(_reap(process))
    process.close()
    return None


async def _reap(process: BaseProcess) -> None:
    await _wait_exits([process], _REAP_WAIT)
    if process.exitcode is not None:
        process.close()


# --- in the worker process ---------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """Be killed when the parent dies, even mid-job: its job is rescued and run
    again elsewhere, so this run must not go on beside it."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


def _worker_main(conn: Connection, sys_path: list[str], parent: int) -> None:
    """Run jobs until the parent closes the pipe (or dies: same EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _die_with(parent)
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(_KERNEL_NAME)
    sys.path[:] = [*sys_path, *(p for p in sys.path if p not in sys_path)]
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        reply = _perform(message)
        try:
            conn.send(reply)
        except OSError:
            return


def _perform(message: bytes) -> _Reply:
    try:
        handler, job = pickle.loads(message)
    except Exception as error:
        text = f"worker process could not load the task: {describe_error(error)}"
        return ("error", None, text, traceback.format_exc(), None)
    try:
        value = handler(job)
    except Retry as retry:
        return ("retry", None, retry.reason, None, retry.after)
    except Discard as discard:
        return ("discard", None, discard.reason, None, None)
    except Cancel as cancel:
        return ("cancel", None, cancel.reason, None, None)
    except Exception as error:
        return ("error", None, describe_error(error), traceback.format_exc(), None)
    try:
        body = msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError) as error:
        text = (
            f"handler returned a value that is not JSON-serialisable "
            f"({type(value).__name__}): {error}"
        )
        return ("unserialisable", None, text, None, None)
    return ("value", body, "", None, None)
