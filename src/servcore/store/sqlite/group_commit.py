"""One SQLite writer thread that commits many callers' writes together.

Why: with ``synchronous=FULL`` every commit waits for an fsync (~0.25 ms
here), so one commit per job caps a store near 4,000 writes/s. Callers from
the event loop instead hand the writer small *operations* (functions of a
connection); the writer takes everything waiting, runs it in one
transaction, commits once, and only then resolves every caller's future. A
caller is answered only after its write is durable, and a burst of N
callers costs one fsync instead of N.

::

    loop: submit(op) ──▶ [pending] ──▶ writer thread: BEGIN IMMEDIATE
                                              op1 op2 … opN
                                              COMMIT (one fsync)
          futures ◀── call_soon_threadsafe ◀── results

If an operation raises, the group is rolled back and each operation is run
again in a transaction of its own, so one bad write fails only its caller.
If it failed for want of space, ``on_full`` (see ``space``) first gets a
chance to make room.
If the connection itself breaks, the writer reports the problem, reopens it
with backoff, and carries on: it is supervised from inside.

An operation may :meth:`~GroupCommitWriter.tell` something to other
processes (a queue that got jobs, a running job cancelled): what a
transaction told is handed to ``on_commit`` once, right after its COMMIT and
before any caller is answered, and dropped if it rolls back — told when,
and only if, it is committed, as PostgreSQL's NOTIFY is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from servcore.store.sqlite.space import disk_full

log = logging.getLogger("servcore.store.sqlite")

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
OnCommit = Callable[[set[str]], None]
OnFull = Callable[[sqlite3.Connection], object]

_STOP = object()
_RESTART_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class _Pending:
    __slots__ = ("future", "loop", "operation")

    def __init__(
        self,
        operation: Operation,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.operation = operation
        self.loop = loop
        self.future = future


def _deliver(outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    for future, error, value in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class GroupCommitWriter:
    """Owns the write connection; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_group: int = 2000,
        name: str = "servcore-sqlite-writer",
        on_commit: OnCommit | None = None,
        on_full: OnFull | None = None,
    ) -> None:
        self._connect = connect
        self._max_group = max_group
        self._on_commit = on_commit
        self._on_full = on_full
        self._told: set[str] = set()  # by the transaction under way (writer thread only)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._closed = False
        self.problem: str | None = None
        self.restarts = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``operation``; the future resolves after its group commits."""
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._inbox.put(_Pending(operation, loop, future))
        return future

    def tell(self, message: str) -> None:
        """From inside an operation: hand ``message`` to ``on_commit`` once its
        transaction commits (nothing if it rolls back)."""
        self._told.add(message)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._inbox.put(_STOP)
            self._thread.join(timeout)

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        conn: sqlite3.Connection | None = None
        while True:
            try:
                if conn is None:
                    conn = self._connect()
                    if self.problem is not None:
                        log.warning("SQLite writer recovered")
                    self.problem = None
                    failures = 0
                if not self._serve(conn):
                    conn.close()
                    return
            except Exception as error:  # supervision: log, back off, reopen
                self.problem = f"SQLite writer failed: {error}"
                log.exception("SQLite writer crashed; restarting it")
                self.restarts += 1
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                    conn = None
                # A first crash is retried at once with what is queued. If the
                # database stays unusable, nobody waits on it: what is queued
                # fails now (a StoreError; HTTP answers 503) instead of hanging.
                if self._closed:
                    self._fail_waiting(error)
                    return
                if failures and self._fail_waiting(error):
                    return
                time.sleep(_RESTART_DELAYS[min(failures, len(_RESTART_DELAYS) - 1)])
                failures += 1

    def _fail_waiting(self, error: Exception) -> bool:
        """Fail every waiting operation; True if a stop request was among them."""
        waiting: list[_Pending] = []
        stop = False
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
            else:
                waiting.append(item)
        self._fail_all(waiting, error)
        return stop

    def _serve(self, conn: sqlite3.Connection) -> bool:
        """Commit groups until asked to stop; False once stopped."""
        while True:
            first = self._inbox.get()
            group = [first]
            while len(group) < self._max_group:
                try:
                    group.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in group)
            work = [item for item in group if item is not _STOP]
            if work:
                self._commit_group(conn, work)
            if stop:
                return False

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Pending]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            self._begin(conn)
            try:
                for item in group:
                    results.append((True, item.operation(conn)))
                self._commit(conn)
            except BaseException:
                _rollback(conn)
                raise
        except Exception as error:
            if _connection_broken(error) or not _usable(conn):
                self._fail_all(group, error)
                raise
            if self._on_full is not None and disk_full(error):
                self._on_full(conn)
            results = self._one_by_one(conn, group)
        self._answer(group, results)

    def _begin(self, conn: sqlite3.Connection) -> None:
        self._told = set()
        conn.execute("BEGIN IMMEDIATE")

    def _commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")
        told, self._told = self._told, set()
        if told and self._on_commit is not None:
            try:
                self._on_commit(told)
            except Exception:  # telling is best effort: the write stands
                log.exception("SQLite writer: telling other processes of a commit failed")

    def _one_by_one(
        self, conn: sqlite3.Connection, group: list[_Pending]
    ) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        for item in group:
            try:
                self._begin(conn)
                try:
                    value = item.operation(conn)
                    self._commit(conn)
                except BaseException:
                    _rollback(conn)
                    raise
                results.append((True, value))
            except Exception as error:
                results.append((False, error))
        return results

    def _answer(self, group: list[_Pending], results: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for item, (ok, value) in zip(group, results, strict=True):
            outcome = (item.future, None, value) if ok else (item.future, value, None)
            by_loop.setdefault(item.loop, []).append(outcome)
        for loop, outcomes in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, outcomes)

    def _fail_all(self, group: list[_Pending], error: BaseException) -> None:
        self._answer(group, [(False, error)] * len(group))


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _usable(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1").fetchone()
    except sqlite3.Error:
        return False
    return True


def _connection_broken(error: Exception) -> bool:
    if not isinstance(error, sqlite3.OperationalError | sqlite3.ProgrammingError):
        return False
    text = str(error).lower()
    return any(
        marker in text
        for marker in ("disk i/o error", "unable to open", "readonly", "closed", "malformed")
    )
