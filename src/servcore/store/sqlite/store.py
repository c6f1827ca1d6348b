"""``sqlite:///path.db``: a durable store for one host.

Writes go through one long-lived connection owned by a group-commit writer
thread (see ``group_commit``); reads run on their own connections in a small
thread pool, so listing jobs never waits behind a commit. WAL mode, and
``synchronous=FULL`` unless the URL asks for ``?synchronous=NORMAL``.

Other processes on the file hear of what concerns them once it commits —
jobs that can start, a running job cancelled — over the wake-up sockets
of ``notifier.sqlite``: writes ``tell`` the writer, which sends after COMMIT.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from servcore.job_reads import (
    FinishedTally,
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
)
from servcore.jobs import Job, NewJob
from servcore.leadership.base import LeaderTerm
from servcore.notifier.base import cancel_message, finished_message
from servcore.notifier.sqlite import SqliteNotifier, WakeSender
from servcore.store.base import (
    ClaimParams,
    Completion,
    Failure,
    Lease,
    RescueReport,
    StoreError,
    rescue_verdict,
)
from servcore.store.job_columns import inserted_values
from servcore.store.queue_sql import FINISHED
from servcore.store.sqlite import leader
from servcore.store.sqlite import reads as sqlite_reads
from servcore.store.sqlite.group_commit import GroupCommitWriter
from servcore.store.sqlite.inserts import InsertCoalescer, insert_one, insert_rows
from servcore.store.sqlite.node_locks import NodeLocks
from servcore.store.sqlite.rows import (
    COLUMNS,
    encode_json,
    from_micros,
    row_to_job,
    time_from_micros,
    to_micros,
)
from servcore.store.sqlite.schema import EXPIRES_AT, migrate
from servcore.store.sqlite.space import SpaceKeeper

T = TypeVar("T")
_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
_READERS = 2
# Finished jobs deleted by one write transaction (pruning, result expiry): a
# few milliseconds of holding the write lock.
_DELETE_CHUNK = 2000

_CLAIM = f"""
-- A job inserted after the claim read the clock still starts no earlier than it was inserted.
UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = max(:now, inserted_at),
       locked_by = :node, locked_until = :until, lease_token = lease_token + 1
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_ready
    WHERE status = 'queued' AND queue = :queue
    ORDER BY priority, id LIMIT :limit
)
RETURNING {COLUMNS}
"""


class SqliteStore:
    """See the module docstring."""

    def __init__(self, url: str, path: str, *, synchronous: str = "FULL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        if not path or path == ":memory:":
            raise ValueError("a SQLite store needs a file path (use memory:// for no file)")
        self.url = url
        self.path = Path(path)
        self.synchronous = synchronous
        self._wakes = WakeSender(self.path)
        self._space = SpaceKeeper(self.path)
        self._listener: SqliteNotifier | None = None
        self._writer = self._new_writer()  # replaced by each open()
        self._inserts = InsertCoalescer(self._writer.submit, self._tell)
        self._reader_local = threading.local()
        self._readers: ThreadPoolExecutor | None = None
        self._nodes = NodeLocks(Path(f"{path}-nodes"))
        # Bumped by every write that can add waiting jobs; a next_run_at
        # learned by a claim holds only while no such write came after it.
        self._generation = 0
        self._unclaimed_nodes: set[str] = set()
        self._next_run_at: dict[str, tuple[int | None, int]] = {}
        self._opened = False
        # Callers' own connections (insert_jobs_blocking), one per thread; all
        # of them listed, so that close() closes them.
        self._caller_local = threading.local()
        self._caller_conns: list[sqlite3.Connection] = []

    # -- life cycle -------------------------------------------------------

    def _new_writer(self) -> GroupCommitWriter:
        return GroupCommitWriter(
            self._connect_writer, on_commit=self._wakes.send, on_full=self._space.on_full
        )

    def _tell(self, message: str) -> None:
        """From inside a write: other processes hear ``message`` once it commits."""
        self._writer.tell(message)

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA busy_timeout = 10000")
        self._space.tune(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = ON")
            self._reader_local.conn = conn
        return conn

    async def open(self) -> None:
        if self._opened:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._first_connect()
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open SQLite database {str(self.path)!r}: {error}") from None
        self._writer = self._new_writer()
        self._inserts = InsertCoalescer(self._writer.submit, self._tell)
        self._writer.start()
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="servcore-sqlite-reader")
        self._opened = True
        try:
            await self._write(migrate)
        except (StoreError, RuntimeError) as error:
            await self.close()
            raise StoreError(
                f"cannot prepare SQLite database {str(self.path)!r}: {error}"
            ) from None
        self._space.hold_reserve()

    def _first_connect(self) -> None:
        """Connect once, so that an unusable path is a clear error at open. On
        a full volume WAL mode cannot create its files: the reserve of space
        kept for this is given up, and the connection tried again."""
        try:
            self._connect_writer().close()
        except (OSError, sqlite3.Error):
            if not self._space.give_up_reserve():
                raise
            self._connect_writer().close()

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await asyncio.to_thread(self._writer.close)
        conns, self._caller_conns = self._caller_conns, []
        self._caller_local = threading.local()
        for conn in conns:
            conn.close()
        self._wakes.close()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        self._nodes.release_all()

    def bound_waits(self, lease: float) -> None:
        # A statement here waits only for another process's write, at most
        # busy_timeout (10 s); runs of this process's writes are short batches.
        return None

    async def tend_tables(self) -> list[str]:
        # Claims name their index (INDEXED BY) and the other hot statements
        # find rows by id: no statistics to keep. Freed pages are reused.
        # A reserve of space given up while the volume was full is taken back
        # once there is room again (see store.sqlite.space).
        await asyncio.to_thread(self._space.hold_reserve)
        return []

    async def register_node(self, node: str) -> None:
        self._nodes.hold(node)
        # Until this process claims under the name, any job running under it
        # belongs to an earlier process of the same name: rescue it at once.
        self._unclaimed_nodes.add(node)

    async def seek_leadership(self, node: str, now: datetime, until: datetime) -> LeaderTerm | None:
        now_us, until_us = to_micros(now), to_micros(until)
        return await self._write(lambda conn: leader.seek(conn, node, now_us, until_us))

    async def resign_leadership(self, held: LeaderTerm, now: datetime) -> None:
        now_us = to_micros(now)
        await self._write(lambda conn: leader.resign(conn, held, now_us))

    async def record_node(self, info: NodeInfo) -> None:
        row = (
            info.node,
            to_micros(info.started_at),
            to_micros(info.heartbeat_at),
            encode_json(list(info.queues)),
            int(info.leader),
        )
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO servcore_nodes (node, started_at, heartbeat_at, queues, leader) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, queues = excluded.queues, "
                "leader = excluded.leader",
                row,
            )
        )

    async def forget_node(self, node: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM servcore_nodes WHERE node = ?", (node,))
        )

    async def list_nodes(self, alive_since: datetime) -> list[NodeInfo]:
        return await self._read(
            lambda conn: sqlite_reads.select_nodes(conn, to_micros(alive_since))
        )

    def notifier(self) -> SqliteNotifier:
        """The listener for this file's wake-ups (one per store)."""
        if self._listener is None:
            self._listener = SqliteNotifier(self.path, self._wakes)
        return self._listener

    def problem(self) -> str | None:
        return self._writer.problem

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if not self._opened:
            raise StoreError("the SQLite store is not open")
        try:
            return await self._writer.submit(operation)
        except (sqlite3.Error, RuntimeError) as error:
            raise StoreError(f"SQLite write failed: {error}") from error

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None or not self._opened:
            raise StoreError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: query(self._reader()))
        except sqlite3.Error as error:
            raise StoreError(f"SQLite read failed: {error}") from error

    # -- writes -----------------------------------------------------------

    async def insert_jobs(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        self._generation += 1
        if not new_jobs:
            return []
        rows = [_insert_row(new, now) for new in new_jobs]

        if not self._opened:
            raise StoreError("the SQLite store is not open")
        try:
            first_id = await self._inserts.insert(rows)
        except (sqlite3.Error, RuntimeError) as error:
            raise StoreError(f"SQLite write failed: {error}") from error
        return [new.stored(first_id + index, now) for index, new in enumerate(new_jobs)]

    def insert_jobs_blocking(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        """:meth:`insert_jobs` in the calling thread, for code that is not async
        (``Service.enqueue_sync``): committed (durably, as the writer's) on a
        connection of this thread's own, then told to the listening workers.
        One caller at a time gains this way: no hand-off to the writer thread
        and back (see BENCHMARKS.md, "Peers")."""
        self._generation += 1
        if not new_jobs:
            return []
        if not self._opened:
            raise StoreError("the SQLite store is not open")
        rows = [_insert_row(new, now) for new in new_jobs]
        conn = self._caller_writer()
        try:
            if len(rows) == 1:
                # One statement is its own transaction: no BEGIN and COMMIT to
                # run around it (one caller's enqueue is this path's whole cost).
                first_id = insert_one(conn, rows[0])
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    first_id = insert_rows(conn, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            raise StoreError(f"SQLite write failed: {error}") from error
        self._wakes.send({new.queue for new in new_jobs})
        return [new.stored(first_id + index, now) for index, new in enumerate(new_jobs)]

    def _caller_writer(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._caller_local, "conn", None)
        if conn is None:
            conn = self._connect_writer()
            self._caller_local.conn = conn
            self._caller_conns.append(conn)
        return conn

    async def insert_unique(self, new_job: NewJob, now: datetime, since: datetime) -> Insertion:
        key = new_job.unique_key
        assert key is not None, "insert_unique needs a unique_key"
        self._generation += 1
        row = _insert_row(new_job, now)
        since_us = to_micros(since)

        def insert(conn: sqlite3.Connection) -> tuple[Any, ...] | int:
            # The writer runs one operation at a time: check-then-insert is atomic.
            known: tuple[Any, ...] | None = conn.execute(
                f"SELECT {COLUMNS} FROM jobs INDEXED BY jobs_unique "
                "WHERE unique_key = ? AND inserted_at >= ? ORDER BY id DESC LIMIT 1",
                (key, since_us),
            ).fetchone()
            if known is not None:
                return known
            first = insert_rows(conn, [row])
            self._tell(new_job.queue)
            return first

        found = await self._write(insert)
        if isinstance(found, int):
            return Insertion(new_job.stored(found, now), "created")
        job = row_to_job(found)
        return Insertion(job, "existing" if job.payload == new_job.payload else "conflict")

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        values = {
            "queue": params.queue,
            "limit": params.limit,
            "node": params.node,
            "now": to_micros(params.now),
            "until": to_micros(params.lease_until),
        }

        generation = self._generation
        self._unclaimed_nodes.discard(params.node)

        def claim(conn: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], int | None]:
            paused = conn.execute(
                "SELECT paused FROM servcore_queues WHERE name = ?", (params.queue,)
            ).fetchone()
            if paused is not None and paused[0]:
                return [], None  # a paused queue starts nothing
            conn.execute(
                "UPDATE jobs SET status = 'queued' "
                "WHERE status = 'scheduled' AND queue = :queue AND run_at <= :now",
                values,
            )
            rows = conn.execute(_CLAIM, values).fetchall()
            # A short claim means the queue has run dry: learn when it fills
            # again here, saving the runtime a separate read (next_run_at).
            following = (
                sqlite_reads.earliest_run_at(conn, params.queue)
                if len(rows) < params.limit
                else None
            )
            return rows, following

        rows, following = await self._write(claim)
        if len(rows) < params.limit:
            self._next_run_at[params.queue] = (following, generation)
        jobs = [row_to_job(row) for row in rows]
        jobs.sort(key=lambda job: (job.priority, job.id))
        return jobs

    def _held(
        self, conn: sqlite3.Connection, leases: Sequence[Lease | Completion | Failure]
    ) -> set[int]:
        """Ids among ``leases`` that are still running under the same token."""
        tokens = {lease.id: lease.lease_token for lease in leases}
        marks = ",".join("?" * len(tokens))
        rows = conn.execute(
            f"SELECT id, lease_token FROM jobs WHERE status = 'running' AND id IN ({marks})",
            list(tokens),
        ).fetchall()
        return {job_id for job_id, token in rows if tokens[job_id] == token}

    def _taken_late(
        self, conn: sqlite3.Connection, outcomes: Sequence[Completion | Failure]
    ) -> set[int]:
        """Of outcomes not held any more, those of runs rescued while in fact
        alive (their node stalled) that nothing has followed: taken, the rescue
        uncounted. For one that ran again since, the rescue of a run that did
        end is uncounted toward the poison-pill cap, and its outcome refused."""
        if not outcomes:
            return set()
        tokens = {outcome.id: outcome.lease_token for outcome in outcomes}
        marks = ",".join("?" * len(tokens))
        rows = conn.execute(
            f"SELECT id, status, lease_token FROM jobs WHERE rescued > 0 AND id IN ({marks})",
            list(tokens),
        ).fetchall()
        taken = {
            job_id
            for job_id, status, token in rows
            if token == tokens[job_id] and status in ("queued", "scheduled", "failed")
        }
        ran_since = {job_id for job_id, _, token in rows if token > tokens[job_id]}
        conn.executemany(
            "UPDATE jobs SET rescued = rescued - 1 WHERE id = ?",
            [(job_id,) for job_id in taken | ran_since],
        )
        return taken

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[int]:
        if not completions:
            return []
        rows = [
            (to_micros(done.finished_at), encode_json(done.result), done.id, done.lease_token)
            for done in completions
        ]

        def complete(conn: sqlite3.Connection) -> list[int]:
            held = self._held(conn, completions)
            late = self._taken_late(conn, [done for done in completions if done.id not in held])
            conn.executemany(
                "UPDATE jobs SET status = 'done', finished_at = ?, result = ?, "
                "locked_until = NULL WHERE id = ? AND lease_token = ?",
                [row for row in rows if row[2] in held or row[2] in late],
            )
            for job_id in held | late:
                self._tell(finished_message(job_id))
            return [done.id for done in completions if done.id not in held and done.id not in late]

        return await self._write(complete)

    async def fail_jobs(self, failures: Sequence[Failure]) -> list[int]:
        self._generation += 1
        if not failures:
            return []

        def fail(conn: sqlite3.Connection) -> list[int]:
            held = self._held(conn, failures)
            held |= self._taken_late(conn, [f for f in failures if f.id not in held])
            retries, finals = [], []
            for failure in failures:
                if failure.id not in held:
                    continue
                error = encode_json(failure.error)
                at = to_micros(failure.error.at)
                if failure.retry_at is not None:
                    run_at = to_micros(failure.retry_at)
                    status = "scheduled" if run_at > at else "queued"
                    retries.append((status, run_at, error, failure.id))
                else:
                    status = "cancelled" if failure.cancel else "failed"
                    finals.append((status, at, error, failure.id))
                    self._tell(finished_message(failure.id))
            conn.executemany(
                "UPDATE jobs SET status = ?, run_at = ?, errors = json_insert(errors, '$[#]', "
                "json(?)), locked_by = NULL, locked_until = NULL WHERE id = ?",
                retries,
            )
            conn.executemany(
                "UPDATE jobs SET status = ?, finished_at = ?, errors = json_insert(errors, "
                "'$[#]', json(?)), locked_until = NULL WHERE id = ?",
                finals,
            )
            return [failure.id for failure in failures if failure.id not in held]

        return await self._write(fail)

    async def release_jobs(self, leases: Sequence[Lease]) -> list[int]:
        self._generation += 1
        if not leases:
            return []

        def release(conn: sqlite3.Connection) -> list[int]:
            held = self._held(conn, leases)
            if held:
                marks = ",".join("?" * len(held))
                queues = conn.execute(
                    "UPDATE jobs SET status = 'queued', attempt = attempt - 1, started_at = NULL, "
                    f"locked_by = NULL, locked_until = NULL WHERE id IN ({marks}) RETURNING queue",
                    list(held),
                ).fetchall()
                for (queue,) in set(queues):
                    self._tell(queue)  # another worker may take them now
            return [lease.id for lease in leases if lease.id not in held]

        return await self._write(release)

    async def extend_leases(self, leases: Sequence[Lease], until: datetime) -> list[int]:
        if not leases:
            return []
        until_us = to_micros(until)

        def extend(conn: sqlite3.Connection) -> list[int]:
            held = self._held(conn, leases)
            conn.executemany(
                "UPDATE jobs SET locked_until = ? WHERE id = ?",
                [(until_us, job_id) for job_id in held],
            )
            return [lease.id for lease in leases if lease.id not in held]

        return await self._write(extend)

    async def release_orphans(
        self, node: str, held: Collection[int], started_before: datetime
    ) -> list[int]:
        self._generation += 1
        before_us = to_micros(started_before)

        def release(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                "SELECT id, queue FROM jobs WHERE status = 'running' AND locked_by = ? "
                "AND started_at < ?",
                (node, before_us),
            ).fetchall()
            orphans = sorted((job_id, queue) for job_id, queue in rows if job_id not in held)
            conn.executemany(
                "UPDATE jobs SET status = 'queued', attempt = attempt - 1, started_at = NULL, "
                "locked_by = NULL, locked_until = NULL WHERE id = ?",
                [(job_id,) for job_id, _ in orphans],
            )
            for queue in {queue for _, queue in orphans}:
                self._tell(queue)
            return [job_id for job_id, _ in orphans]

        return await self._write(release)

    async def rescue_expired_leases(
        self,
        now: datetime,
        max_rescues: int,
        spare: Collection[int] = (),
        *,
        fence: LeaderTerm | None = None,
    ) -> RescueReport:
        self._generation += 1
        now_us = to_micros(now)

        def rescue(conn: sqlite3.Connection) -> RescueReport:
            if not leader.leads(conn, fence):
                return RescueReport(requeued=[], failed=[])
            owners = [
                node
                for (node,) in conn.execute(
                    "SELECT DISTINCT locked_by FROM jobs WHERE status = 'running'"
                )
            ]
            dead = [
                node
                for node in owners
                if node is None or node in self._unclaimed_nodes or not self._nodes.is_alive(node)
            ]
            marks = ",".join("?" * len(dead))
            lost_owner = f" OR locked_by IN ({marks})" if dead else ""
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE status = 'running' "
                f"AND (locked_until <= ? OR locked_by IS NULL{lost_owner})",
                [now_us, *dead],
            ).fetchall()
            report = RescueReport(requeued=[], failed=[])
            for row in rows:
                job = row_to_job(row)
                if job.id in spare:
                    continue
                error, requeue = rescue_verdict(job, now, max_rescues)
                if requeue:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', run_at = ?, rescued = rescued + 1, "
                        "errors = json_insert(errors, '$[#]', json(?)), locked_by = NULL, "
                        "locked_until = NULL WHERE id = ?",
                        (now_us, encode_json(error), job.id),
                    )
                    report.requeued.append(job.id)
                    self._tell(job.queue)
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', finished_at = ?, rescued = rescued + 1,"
                        " errors = json_insert(errors, '$[#]', json(?)), locked_by = NULL, "
                        "locked_until = NULL WHERE id = ?",
                        (now_us, encode_json(error), job.id),
                    )
                    report.failed.append(job.id)
                    self._tell(finished_message(job.id))
            return report

        return await self._write(rescue)

    async def set_paused(self, queue: str, paused: bool) -> None:
        self._generation += 1

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO servcore_queues (name, paused) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (queue, int(paused)),
            )
            if not paused:
                self._tell(queue)  # resumed: its waiting jobs can start

        await self._write(save)

    async def list_queues(self, now: datetime, *, active_only: bool = False) -> list[QueueInfo]:
        now_us = to_micros(now)
        return await self._read(lambda conn: sqlite_reads.select_queues(conn, now_us, active_only))

    async def cancel_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        if not ids:
            return []
        now_us = to_micros(now)
        marks = ",".join("?" * len(ids))

        def cancel(conn: sqlite3.Connection) -> list[int]:
            running = conn.execute(
                f"SELECT id, lease_token FROM jobs WHERE id IN ({marks}) AND status = 'running'",
                list(ids),
            ).fetchall()
            for job_id, lease_token in running:
                # The node running it hears at commit, and stops the run.
                self._tell(cancel_message(job_id, lease_token))
            rows = conn.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = ?, "
                f"locked_until = NULL "
                f"WHERE id IN ({marks}) AND status IN ('queued', 'scheduled', 'running') "
                f"RETURNING id",
                [now_us, *ids],
            ).fetchall()
            for (job_id,) in rows:
                self._tell(finished_message(job_id))
            return sorted(job_id for (job_id,) in rows)

        return await self._write(cancel)

    async def retry_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        if not ids:
            return []
        self._generation += 1
        now_us = to_micros(now)
        marks = ",".join("?" * len(ids))

        def retry(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                f"UPDATE jobs SET status = 'queued', run_at = ?, finished_at = NULL, "
                f"max_attempts = max(max_attempts, attempt + 1), rescued = 0, locked_by = NULL "
                f"WHERE id IN ({marks}) AND status IN ('failed', 'cancelled') "
                f"AND NOT (result_ttl IS NOT NULL AND {EXPIRES_AT} <= ?) RETURNING id, queue",
                [now_us, *ids, now_us],
            ).fetchall()
            for queue in {queue for _, queue in rows}:
                self._tell(queue)
            return sorted(job_id for job_id, _ in rows)

        return await self._write(retry)

    async def prune_finished(self, before: datetime, *, fence: LeaderTerm | None = None) -> int:
        return await self._delete_in_chunks(
            f"SELECT id FROM jobs INDEXED BY jobs_finished WHERE {FINISHED} AND finished_at < ?",
            fence,
            to_micros(before),
        )

    async def _delete_in_chunks(self, select: str, fence: LeaderTerm | None, *args: Any) -> int:
        """Delete the jobs ``select`` names a chunk per write transaction, so
        that other writes (claims, completions) go between two chunks instead
        of waiting for all history to go at once. Each chunk is fenced by
        itself: a leader replaced midway stops there."""
        sql = f"DELETE FROM jobs WHERE id IN ({select} LIMIT {_DELETE_CHUNK})"

        def delete(conn: sqlite3.Connection) -> int:
            if not leader.leads(conn, fence):
                return 0
            return conn.execute(sql, args).rowcount

        deleted = 0
        while True:
            chunk = await self._write(delete)
            deleted += chunk
            if chunk < _DELETE_CHUNK:
                return deleted

    async def advance_cron(
        self,
        name: str,
        tick: datetime,
        new_job: NewJob | None,
        now: datetime,
        *,
        fence: LeaderTerm | None = None,
    ) -> Job | None:
        self._generation += 1
        rows = [_insert_row(new_job, now)] if new_job is not None else []

        def advance(conn: sqlite3.Connection) -> int | None:
            if not leader.leads(conn, fence):
                return None
            # The writer runs one operation at a time, and other processes on
            # the file wait for its lock: compare-and-set, then insert.
            won = conn.execute(
                "INSERT INTO servcore_cron (name, last_tick) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick "
                "WHERE servcore_cron.last_tick < excluded.last_tick RETURNING name",
                (name, to_micros(tick)),
            ).fetchone()
            if won is None or new_job is None:
                return None
            self._tell(new_job.queue)
            job_id = insert_rows(conn, rows)
            conn.execute("UPDATE servcore_cron SET last_job_id = ? WHERE name = ?", (job_id, name))
            return job_id

        first_id = await self._write(advance)
        if first_id is None or new_job is None:
            return None
        return new_job.stored(first_id, now)

    async def cron_last_jobs(self) -> dict[str, int]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT name, last_job_id FROM servcore_cron WHERE last_job_id IS NOT NULL"
            ).fetchall()
        )
        return dict(rows)

    async def cron_ticks(self) -> dict[str, datetime]:
        rows = await self._read(
            lambda conn: conn.execute("SELECT name, last_tick FROM servcore_cron").fetchall()
        )
        return {name: time_from_micros(tick) for name, tick in rows}

    async def finished_per_minute(self, since: datetime) -> list[FinishedTally]:
        since_us = to_micros(since)

        def tally(conn: sqlite3.Connection) -> list[tuple[int, str, str, int]]:
            return conn.execute(
                "SELECT finished_at / 60000000, queue, status, count(*) FROM jobs "
                "WHERE status IN ('done', 'failed', 'cancelled') AND finished_at >= ? "
                "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                (since_us,),
            ).fetchall()

        rows = await self._read(tally)
        return [
            FinishedTally(time_from_micros(minute * 60_000_000), queue, status, n)
            for minute, queue, status, n in rows
        ]

    async def expire_results(self, now: datetime, *, fence: LeaderTerm | None = None) -> int:
        return await self._delete_in_chunks(
            # Without ANALYZE statistics SQLite might rather read another index.
            f"SELECT id FROM jobs INDEXED BY jobs_expiry "
            f"WHERE result_ttl IS NOT NULL AND {EXPIRES_AT} <= ? AND {FINISHED}",
            fence,
            to_micros(now),
        )

    # -- reads ------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        return await self._read(lambda conn: sqlite_reads.select_job(conn, job_id))

    async def list_jobs(self, query: JobQuery, now: datetime) -> JobPage:
        return await self._read(lambda conn: sqlite_reads.select_page(conn, query, now))

    async def matching_ids(self, query: JobQuery, now: datetime) -> list[int]:
        return await self._read(lambda conn: sqlite_reads.select_matching_ids(conn, query, now))

    async def count_jobs(self, now: datetime) -> JobCounts:
        return await self._read(lambda conn: sqlite_reads.count_by_status(conn, now))

    async def next_run_at(self, queue: str) -> datetime | None:
        known = self._next_run_at.get(queue)
        if known is not None and known[1] == self._generation:
            return from_micros(known[0])
        earliest = await self._read(lambda conn: sqlite_reads.earliest_run_at(conn, queue))
        return from_micros(earliest)


def _insert_row(new: NewJob, now: datetime) -> tuple[Any, ...]:
    return (*inserted_values(new, now, encode_json, to_micros), to_micros(now))
