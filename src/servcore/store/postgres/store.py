"""``postgresql://user@host:port/db``: the store many nodes share.

asyncpg with a connection pool. Claims take jobs with ``FOR UPDATE SKIP
LOCKED``, so concurrent nodes never wait on, or share, a job; inserts,
completions and failures are batched into single statements. Tables live in
``?schema=NAME`` (default ``public``) as ``servcore_jobs`` and
``servcore_meta``; the schema is created and migrated on open.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from servcore.job_reads import (
    FinishedTally,
    Insertion,
    JobCounts,
    JobPage,
    JobQuery,
    NodeInfo,
    QueueInfo,
)
from servcore.jobs import DEFAULT_LEASE, Job, NewJob
from servcore.leadership.base import LeaderTerm
from servcore.notifier.base import CANCEL_PREFIX, FINISHED_PREFIX
from servcore.notifier.postgres import PostgresNotifier
from servcore.store.base import (
    ClaimParams,
    Completion,
    Failure,
    Lease,
    OutcomeUnknown,
    RescueReport,
    StoreError,
    rescue_verdict,
)
from servcore.store.listing_sql import Binder, Listing
from servcore.store.postgres import leader
from servcore.store.postgres.inserts import Database, InsertBatcher, InsertStatements
from servcore.store.postgres.rows import (
    COLUMNS,
    DATABASE_ERRORS,
    OUTCOME_UNKNOWN_ERRORS,
    append_error,
    row_to_job,
    to_json,
)
from servcore.store.postgres.schema import (
    EXPIRES_AT,
    LOCK_QUEUE,
    LOCK_UNIQUE,
    finished_counts_sql,
    fold_counts_sql,
    migrate,
    valid_schema_name,
)
from servcore.store.postgres.waits import (
    TABLE_STATE,
    TIMEOUT_ERRORS,
    WaitLimits,
    describe_blockers,
    statement_head,
    tending_due,
)
from servcore.store.queue_sql import active_tally_sql, counts_of, queue_infos

log = logging.getLogger("servcore.store")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON crosses the wire as text; msgspec encodes and decodes it here.
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=lambda text: text, decoder=lambda text: text, schema="pg_catalog"
        )


async def _release(conn: asyncpg.Connection) -> None:
    """Hand a connection back to the pool without asyncpg's reset statement
    (a round trip on every use: it doubled the cost of one enqueue). Nothing
    here leaves session state on a pooled connection: settings are SET LOCAL
    or set_config(..., true) (tend_tables resets its own), advisory locks are
    transaction-scoped, LISTEN holds a connection of its own.
    A connection left inside a transaction (a cancelled caller) gets the full reset."""
    if conn.is_in_transaction():
        await conn.reset()


_PROMOTE_BATCH = 1000  # scheduled jobs made ready by one claim, at most
_DELETE_CHUNK = 10_000  # finished jobs pruned by one statement
# For the rest of a claim's transaction: the statements a node runs most are
# planned once and reused (a plan costs as much again as running them), and
# they cannot go wrong whatever the statistics, because every plan but the
# one that walks the ready (or scheduled) index in claim order and looks the
# picked ids up by primary key is switched off. The connection's default
# (force_custom_plan, see store.postgres.waits) stays for every other statement.
_CLAIM_PLANNER = ", ".join(
    f"set_config('{name}', '{value}', true)"
    for name, value in (
        ("plan_cache_mode", "auto"),
        ("enable_seqscan", "off"),
        ("enable_sort", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
        ("enable_bitmapscan", "off"),
    )
)
# Whose outcome an update takes: the run that holds the job, or (see
# _settle_late) a run that was rescued and not followed by another one.
# (which rows, their rescue count after):
_HELD = ("j.status = 'running'", "j.rescued")


# A CTE "told" that says which jobs finished (``notifier.base``: ``finished:<ids>``),
# a notification per 300 ids: a payload holds under 8,000 bytes. Sent at
# commit, heard by every listener, this process's own too.
def _tell_finished(ids: str, channel: str, prefix: str) -> str:
    return f"""told AS (
                SELECT pg_notify({channel}, {prefix}::text || string_agg(id::text, ','))
                FROM (SELECT id, (row_number() OVER ()) / 300 AS chunk FROM ({ids}) AS f(id))
                    AS numbered
                GROUP BY chunk
            )"""


_RESCUED_FROM_THIS_RUN = (
    "j.status IN ('queued', 'scheduled', 'failed') AND j.rescued > 0",
    "j.rescued - 1",
)


class PostgresStore:
    """See the module docstring."""

    def __init__(self, url: str, dsn: str, *, schema: str = "public", pool_size: int = 10) -> None:
        if not valid_schema_name(schema):
            raise ValueError("schema must be a plain identifier (letters, digits, _)")
        if pool_size < 2:
            raise ValueError("pool_size must be >= 2")
        self.url = url
        self.schema = schema
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._jobs = f'"{schema}".servcore_jobs'
        self._active_tally = active_tally_sql("$1", self._jobs)
        self.channel = f"servcore_{schema}"[:63]
        self._unclaimed_nodes: set[str] = set()
        self._listener: PostgresNotifier | None = None
        self._limits = WaitLimits.for_lease(DEFAULT_LEASE)
        self._inserts = InsertStatements(self._jobs)
        # Concurrent callers' inserts of one loop turn share a statement and its commit.
        self._batcher = InsertBatcher(
            lambda new_jobs, now: self._insert(self._ready_pool(), new_jobs, now)
        )

    # -- life cycle -------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                init=_init_connection,
                reset=_release,
                timeout=10,
                server_settings=self._limits.server_settings(),
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            raise StoreError(f"cannot connect to PostgreSQL at {self.url}: {error}") from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, self.schema)
        except (*DATABASE_ERRORS, RuntimeError) as error:
            await pool.close()
            raise StoreError(f"cannot prepare PostgreSQL schema {self.schema!r}: {error}") from None
        self._pool = pool

    async def has_tables(self) -> bool:
        """Whether the schema holds servcore's tables already (opening would
        create them). True when that cannot be told: then ``open`` says why."""
        try:
            conn = await asyncpg.connect(self._dsn, timeout=10)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return True
        try:
            found = await conn.fetchval("SELECT to_regclass($1)", f'"{self.schema}".servcore_jobs')
        except asyncpg.PostgresError:
            return True
        finally:
            await conn.close()
        return found is not None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def bound_waits(self, lease: float) -> None:
        """Give every statement of connections opened from now on timeouts that
        fit ``lease`` (see :mod:`servcore.store.postgres.waits`)."""
        self._limits = WaitLimits.for_lease(lease)

    async def tend_tables(self) -> list[str]:
        async with self._errors("table care"):
            pool = self._ready_pool()
            state = await pool.fetchrow(TABLE_STATE, self._jobs)
            if state is None:
                return []
            await pool.execute(fold_counts_sql(self.schema))
            due = tending_due(state)
            for command in due:
                async with pool.acquire() as conn:
                    # Minutes on a large table are fine here, and block no job verb.
                    await conn.execute("SET statement_timeout = 0")
                    try:
                        await conn.execute(f"{command} {self._jobs}")
                    finally:
                        await conn.execute("RESET statement_timeout")
            return due

    async def register_node(self, node: str) -> None:
        # Until this process claims under the name, any job running under it
        # belongs to an earlier process of the same name: rescue it at once.
        self._unclaimed_nodes.add(node)

    def problem(self) -> str | None:
        return self._listener.problem() if self._listener is not None else None

    async def seek_leadership(self, node: str, now: datetime, until: datetime) -> LeaderTerm | None:
        rows = await self._fetch(leader.seek_sql(self.schema), node, now, until)
        return LeaderTerm(node, rows[0]["term"]) if rows else None

    async def resign_leadership(self, held: LeaderTerm, now: datetime) -> None:
        await self._fetch(leader.resign_sql(self.schema), held.node, held.term, now)

    async def record_node(self, info: NodeInfo) -> None:
        await self._fetch(
            f"""
            INSERT INTO "{self.schema}".servcore_nodes
                (node, started_at, heartbeat_at, queues, leader)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (node) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                queues = excluded.queues, leader = excluded.leader
            """,
            info.node,
            info.started_at,
            info.heartbeat_at,
            list(info.queues),
            info.leader,
        )

    async def forget_node(self, node: str) -> None:
        await self._fetch(f'DELETE FROM "{self.schema}".servcore_nodes WHERE node = $1', node)

    async def list_nodes(self, alive_since: datetime) -> list[NodeInfo]:
        rows = await self._fetch(
            f'SELECT node, started_at, heartbeat_at, queues, leader FROM "{self.schema}".'
            "servcore_nodes WHERE heartbeat_at >= $1 ORDER BY node",
            alive_since,
        )
        return [
            NodeInfo(
                node=row["node"],
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                queues=tuple(row["queues"]),
                leader=row["leader"],
            )
            for row in rows
        ]

    def notifier(self) -> PostgresNotifier:
        """The listener for this store's channel (one per process)."""
        if self._listener is None:
            self._listener = PostgresNotifier(self._dsn, self.channel)
        return self._listener

    def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        return self._pool

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        # Plain try/except, not _errors(): this is every job verb's path, and
        # the statement's head is worked out only when something failed.
        try:
            return list(await self._ready_pool().fetch(sql, *args))
        except DATABASE_ERRORS as error:
            raise await self._store_error(error, statement_head(sql)) from error

    @contextlib.asynccontextmanager
    async def _errors(self, what: str, *, commits: bool = False) -> AsyncIterator[None]:
        """Database errors as StoreError (see :meth:`_store_error`); with ``commits``
        (the block commits a change), a connection lost on the way as
        OutcomeUnknown."""
        try:
            yield
        except DATABASE_ERRORS as error:
            if commits and isinstance(error, OUTCOME_UNKNOWN_ERRORS):
                raise OutcomeUnknown(
                    f"PostgreSQL connection lost during {what}: it may or may not have "
                    f"committed ({error})"
                ) from error
            raise await self._store_error(error, what) from error

    async def _store_error(self, error: BaseException, what: str) -> StoreError:
        """``error`` as a StoreError; a timeout logged with the likely blockers."""
        if not isinstance(error, TIMEOUT_ERRORS):
            return StoreError(f"PostgreSQL failed: {error}")
        pool = self._pool
        blockers = await describe_blockers(pool, self.schema) if pool is not None else ""
        log.warning("PostgreSQL gave up on %s: %s; holding locks: %s", what, error, blockers)
        return StoreError(f"PostgreSQL gave up on {what}: {error}")

    # -- writes -----------------------------------------------------------

    async def insert_jobs(self, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        if not new_jobs:
            return []
        async with self._errors("insert", commits=True):
            return await self._batcher.insert(new_jobs, now)

    async def _insert(self, db: Database, new_jobs: Sequence[NewJob], now: datetime) -> list[Job]:
        return await self._inserts.insert(db, self.channel, new_jobs, now)

    async def insert_unique(self, new_job: NewJob, now: datetime, since: datetime) -> Insertion:
        key = new_job.unique_key
        assert key is not None, "insert_unique needs a unique_key"
        async with (
            self._errors("unique insert", commits=True),
            self._ready_pool().acquire() as conn,
            conn.transaction(),
        ):
            # Same key, same lock: concurrent submitters (on any node) queue here.
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                LOCK_UNIQUE,
                f"{self._jobs}:{key}",
            )
            known = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM {self._jobs} WHERE unique_key = $1 "
                "AND inserted_at >= $2 ORDER BY id DESC LIMIT 1",
                key,
                since,
            )
            if known is None:
                (job,) = await self._insert(conn, [new_job], now)
                return Insertion(job, "created")
        job = row_to_job(known)
        return Insertion(job, "existing" if job.payload == new_job.payload else "conflict")

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        self._unclaimed_nodes.discard(params.node)
        async with (
            self._errors("claim"),
            self._ready_pool().acquire() as conn,
            conn.transaction(),
        ):
            # Shared with other claims, exclusive with set_paused: once a
            # pause returns, no claim that began before it is still taking
            # jobs. A statement of its own: one that waited for the lock
            # must read `paused` in a snapshot taken after the wait.
            await conn.execute(
                f"SELECT pg_advisory_xact_lock_shared($1, hashtext($2)), {_CLAIM_PLANNER}",
                LOCK_QUEUE,
                f"{self._jobs}:{params.queue}",
            )
            state = await conn.fetchrow(
                f'SELECT (SELECT paused FROM "{self.schema}".servcore_queues WHERE name = $1), '
                f"EXISTS (SELECT 1 FROM {self._jobs} "
                "WHERE status = 'scheduled' AND queue = $1 AND run_at <= $2) AS due",
                params.queue,
                params.now,
            )
            assert state is not None
            if state["paused"]:
                return []  # a paused queue starts nothing
            if state["due"]:
                await conn.execute(
                    f"""
                    UPDATE {self._jobs} SET status = 'queued'
                    WHERE id IN (SELECT id FROM {self._jobs}
                                 WHERE status = 'scheduled' AND queue = $1 AND run_at <= $2
                                 ORDER BY run_at LIMIT $3
                                 FOR UPDATE SKIP LOCKED)
                    """,
                    params.queue,
                    params.now,
                    _PROMOTE_BATCH,
                )
            rows = await conn.fetch(
                f"""
                UPDATE {self._jobs} SET status = 'running', attempt = attempt + 1,
                       -- A job inserted after the claim read the clock: no earlier than that.
                       started_at = greatest($2, inserted_at), locked_by = $3, locked_until = $4,
                       lease_token = lease_token + 1
                WHERE id IN (SELECT id FROM {self._jobs}
                             WHERE status = 'queued' AND queue = $1
                             ORDER BY priority, id LIMIT $5
                             FOR UPDATE SKIP LOCKED)
                RETURNING {COLUMNS}
                """,
                params.queue,
                params.now,
                params.node,
                params.lease_until,
                params.limit,
            )
        jobs = [row_to_job(row) for row in rows]
        jobs.sort(key=lambda job: (job.priority, job.id))
        return jobs

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[int]:
        if not completions:
            return []
        stale = _stale(completions, await self._complete(completions, _HELD))
        if stale:  # rare: see _settle_late
            late = [done for done in completions if done.id in stale]
            taken = await self._complete(late, _RESCUED_FROM_THIS_RUN)
            stale = await self._settle_late(late, taken)
        return stale

    async def _complete(
        self, completions: Sequence[Completion], whose: tuple[str, str]
    ) -> list[asyncpg.Record]:
        held, rescued = whose
        return await self._fetch(
            f"""
            WITH finished AS (
                UPDATE {self._jobs} AS j
                SET status = 'done', finished_at = v.finished_at, result = v.result::json,
                    locked_until = NULL, rescued = {rescued}
                FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[])
                     AS v(id, token, finished_at, result)
                WHERE j.id = v.id AND j.lease_token = v.token AND {held}
                RETURNING j.id
            ),
            {_tell_finished("SELECT id FROM finished", "$5", "$6")}
            SELECT id FROM finished WHERE (SELECT count(*) FROM told) >= 0
            """,
            [done.id for done in completions],
            [done.lease_token for done in completions],
            [done.finished_at for done in completions],
            [to_json(done.result) for done in completions],
            self.channel,
            FINISHED_PREFIX,
        )

    async def fail_jobs(self, failures: Sequence[Failure]) -> list[int]:
        if not failures:
            return []
        stale = _stale(failures, await self._fail(failures, _HELD))
        if stale:  # rare: see _settle_late
            late = [f for f in failures if f.id in stale]
            stale = await self._settle_late(late, await self._fail(late, _RESCUED_FROM_THIS_RUN))
        return stale

    async def _fail(
        self, failures: Sequence[Failure], whose: tuple[str, str]
    ) -> list[asyncpg.Record]:
        held, rescued = whose
        statuses = [
            ("scheduled" if f.retry_at > f.error.at else "queued")
            if f.retry_at is not None
            else ("cancelled" if f.cancel else "failed")
            for f in failures
        ]
        return await self._fetch(
            f"""
            WITH changed AS (
            UPDATE {self._jobs} AS j
            SET status = v.status,
                run_at = COALESCE(v.retry_at, j.run_at),
                finished_at = CASE WHEN v.retry_at IS NULL THEN v.at ELSE j.finished_at END,
                errors = {append_error("j.errors", "v.error")},
                -- A finished job keeps the node that ran it; a retried one is nobody's.
                locked_by = CASE WHEN v.retry_at IS NULL THEN j.locked_by END,
                locked_until = NULL, rescued = {rescued}
            FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[],
                        $5::timestamptz[], $6::text[])
                 AS v(id, token, status, retry_at, at, error)
            WHERE j.id = v.id AND j.lease_token = v.token AND {held}
            RETURNING j.id, v.retry_at IS NULL AS final
            ),
            {_tell_finished("SELECT id FROM changed WHERE final", "$7", "$8")}
            SELECT id FROM changed WHERE (SELECT count(*) FROM told) >= 0
            """,
            [f.id for f in failures],
            [f.lease_token for f in failures],
            statuses,
            [f.retry_at for f in failures],
            [f.error.at for f in failures],
            [to_json(f.error) for f in failures],
            self.channel,
            FINISHED_PREFIX,
        )

    async def _settle_late(
        self, late: Sequence[Completion] | Sequence[Failure], taken: list[asyncpg.Record]
    ) -> list[int]:
        """Outcomes of runs that were rescued while they were in fact alive (their
        node stalled, or lost the store for a while). Taken above if nothing ran
        the job since (requeued, or failed by the rescue as a poison pill);
        refused if it ran again, but then the rescue of a run that did end is
        not counted toward the poison-pill cap. Returns the refused ids."""
        refused = _stale(late, taken)
        if refused:
            await self._fetch(
                f"""
                UPDATE {self._jobs} AS j SET rescued = j.rescued - 1
                FROM unnest($1::bigint[], $2::bigint[]) AS v(id, token)
                WHERE j.id = v.id AND j.lease_token > v.token AND j.rescued > 0
                """,
                [outcome.id for outcome in late if outcome.id in refused],
                [outcome.lease_token for outcome in late if outcome.id in refused],
            )
        return refused

    async def release_jobs(self, leases: Sequence[Lease]) -> list[int]:
        if not leases:
            return []
        rows = await self._fetch(
            f"""
            UPDATE {self._jobs} AS j
            SET status = 'queued', attempt = j.attempt - 1, started_at = NULL,
                locked_by = NULL, locked_until = NULL
            FROM unnest($1::bigint[], $2::bigint[]) AS v(id, token)
            WHERE j.id = v.id AND j.status = 'running' AND j.lease_token = v.token
            RETURNING j.id
            """,
            [lease.id for lease in leases],
            [lease.lease_token for lease in leases],
        )
        return _stale(leases, rows)

    async def extend_leases(self, leases: Sequence[Lease], until: datetime) -> list[int]:
        if not leases:
            return []
        # Rows another transaction is writing (a completion of the same job,
        # a rescue) are skipped, not waited for: waiting in no fixed order on
        # rows the completer also updates could deadlock. Skipped ones count
        # as not held; the runtime ignores jobs it has already finished.
        rows = await self._fetch(
            f"""
            WITH held AS (
                SELECT j.id FROM {self._jobs} AS j
                JOIN unnest($1::bigint[], $2::bigint[]) AS v(id, token)
                  ON j.id = v.id AND j.lease_token = v.token
                WHERE j.status = 'running'
                ORDER BY j.id
                FOR UPDATE OF j SKIP LOCKED
            )
            UPDATE {self._jobs} AS j SET locked_until = $3 FROM held
            WHERE j.id = held.id
            RETURNING j.id
            """,
            [lease.id for lease in leases],
            [lease.lease_token for lease in leases],
            until,
        )
        return _stale(leases, rows)

    async def release_orphans(
        self, node: str, held: Collection[int], started_before: datetime
    ) -> list[int]:
        rows = await self._fetch(
            f"""
            WITH released AS (
                UPDATE {self._jobs}
                SET status = 'queued', attempt = attempt - 1, started_at = NULL,
                    locked_by = NULL, locked_until = NULL
                WHERE status = 'running' AND locked_by = $1 AND started_at < $2
                  AND NOT id = ANY($3::bigint[])
                RETURNING id, queue
            ),
            woken AS (SELECT pg_notify($4, queue) FROM (SELECT DISTINCT queue FROM released) q)
            SELECT id FROM released WHERE (SELECT count(*) FROM woken) >= 0
            """,
            node,
            started_before,
            list(held),
            self.channel,
        )
        return sorted(row["id"] for row in rows)

    async def rescue_expired_leases(
        self,
        now: datetime,
        max_rescues: int,
        spare: Collection[int] = (),
        *,
        fence: LeaderTerm | None = None,
    ) -> RescueReport:
        report = RescueReport(requeued=[], failed=[])
        leading, fence_args = leader.fence_check(self.schema, fence, 4)
        async with (
            self._errors("rescue"),
            self._ready_pool().acquire() as conn,
            conn.transaction(),
        ):
            # The fence's row lock lasts the transaction: the updates below
            # are made under the term too.
            rows = await conn.fetch(
                f"""
                SELECT {COLUMNS} FROM {self._jobs}
                WHERE status = 'running'
                  AND (locked_until <= $1 OR locked_by IS NULL OR locked_by = ANY($2::text[]))
                  AND NOT id = ANY($3::bigint[]) AND {leading}
                FOR UPDATE SKIP LOCKED
                """,
                now,
                sorted(self._unclaimed_nodes),
                list(spare),
                *fence_args,
            )
            for row in rows:
                job = row_to_job(row)
                error, requeue = rescue_verdict(job, now, max_rescues)
                await conn.execute(
                    f"""
                    UPDATE {self._jobs}
                    SET status = $2, run_at = CASE WHEN $3 THEN $4 ELSE run_at END,
                        finished_at = CASE WHEN $3 THEN finished_at ELSE $4 END,
                        rescued = rescued + 1,
                        errors = {append_error("errors", "$5::text")},
                        locked_by = NULL, locked_until = NULL
                    WHERE id = $1
                    """,
                    job.id,
                    "queued" if requeue else "failed",
                    requeue,
                    now,
                    to_json(error),
                )
                (report.requeued if requeue else report.failed).append(job.id)
            if report.failed:
                await conn.execute(
                    f"WITH {_tell_finished('SELECT unnest($1::bigint[])', '$2', '$3')} "
                    "SELECT count(*) FROM told",
                    report.failed,
                    self.channel,
                    FINISHED_PREFIX,
                )
        return report

    async def set_paused(self, queue: str, paused: bool) -> None:
        async with (
            self._errors("pause"),
            self._ready_pool().acquire() as conn,
            conn.transaction(),
        ):
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                LOCK_QUEUE,
                f"{self._jobs}:{queue}",
            )
            await conn.execute(
                f"""
                WITH saved AS (
                    INSERT INTO "{self.schema}".servcore_queues (name, paused) VALUES ($1, $2)
                    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
                    RETURNING name
                )
                SELECT pg_notify($3, name) FROM saved
                """,
                queue,
                paused,
                self.channel,
            )

    async def list_queues(self, now: datetime, *, active_only: bool = False) -> list[QueueInfo]:
        async with (
            self._errors("queue tally"),
            self._ready_pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await self._tallies(conn, now, active_only)

    async def _tallies(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        now: datetime,
        active_only: bool = False,
    ) -> list[QueueInfo]:
        active = await conn.fetch(self._active_tally, now)
        finished = [] if active_only else await conn.fetch(finished_counts_sql(self.schema))
        paused = await conn.fetch(f'SELECT name, paused FROM "{self.schema}".servcore_queues')
        return queue_infos(active, finished, {row["name"]: row["paused"] for row in paused})

    async def cancel_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        if not ids:
            return []
        # A job running on another node hears of its cancel at commit.
        rows = await self._fetch(
            f"""
            WITH cancelled AS (
                UPDATE {self._jobs} AS j
                SET status = 'cancelled', finished_at = $2, locked_until = NULL
                FROM (SELECT id, status FROM {self._jobs} WHERE id = ANY($1::bigint[]) FOR UPDATE)
                    AS before
                WHERE j.id = before.id AND before.status IN ('queued', 'scheduled', 'running')
                RETURNING j.id, j.lease_token, before.status AS was
            ),
            stopped AS (
                SELECT pg_notify($3, $4::text || id::text || ':' || lease_token::text)
                FROM cancelled WHERE was = 'running'
            ),
            {_tell_finished("SELECT id FROM cancelled", "$3", "$5")}
            -- Referring to "stopped" and "told" is what makes PostgreSQL run them.
            SELECT id FROM cancelled
            WHERE (SELECT count(*) FROM stopped) >= 0 AND (SELECT count(*) FROM told) >= 0
            """,
            list(ids),
            now,
            self.channel,
            CANCEL_PREFIX,
            FINISHED_PREFIX,
        )
        return sorted(row["id"] for row in rows)

    async def retry_jobs(self, ids: Sequence[int], now: datetime) -> list[int]:
        if not ids:
            return []
        rows = await self._fetch(
            f"""
            WITH retried AS (
                UPDATE {self._jobs} SET status = 'queued', run_at = $2, finished_at = NULL,
                       max_attempts = greatest(max_attempts, attempt + 1), rescued = 0,
                       locked_by = NULL
                WHERE id = ANY($1::bigint[]) AND status IN ('failed', 'cancelled')
                  AND NOT (result_ttl IS NOT NULL
                           AND {EXPIRES_AT} <= ($2::timestamptz AT TIME ZONE 'UTC'))
                RETURNING id, queue
            ),
            woken AS (SELECT pg_notify($3, queue) FROM (SELECT DISTINCT queue FROM retried) q)
            SELECT id FROM retried WHERE (SELECT count(*) FROM woken) >= 0
            """,
            list(ids),
            now,
            self.channel,
        )
        return sorted(row["id"] for row in rows)

    async def prune_finished(self, before: datetime, *, fence: LeaderTerm | None = None) -> int:
        return await self._delete_in_chunks(
            "status IN ('done', 'failed', 'cancelled') AND finished_at < $1", fence, before
        )

    async def _delete_in_chunks(self, where: str, fence: LeaderTerm | None, *args: Any) -> int:
        """Delete what ``where`` matches a chunk at a time: each statement stays
        well inside the statement timeout however much history has gathered.
        Each chunk is fenced by itself: a leader replaced midway stops there."""
        leading, fence_args = leader.fence_check(self.schema, fence, len(args) + 1)
        deleted = 0
        while True:
            rows = await self._fetch(
                f"DELETE FROM {self._jobs} WHERE id IN "
                f"(SELECT id FROM {self._jobs} WHERE {where} LIMIT {_DELETE_CHUNK}) "
                f"AND {leading} RETURNING id",
                *args,
                *fence_args,
            )
            deleted += len(rows)
            if len(rows) < _DELETE_CHUNK:
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
        leading, fence_args = leader.fence_check(self.schema, fence, 3)
        async with (
            self._errors("cron tick"),
            self._ready_pool().acquire() as conn,
            conn.transaction(),
        ):
            # The upsert's row lock makes concurrent callers on any node
            # queue; the one after sees the tick already recorded. The fence's
            # lasts the transaction, so the job is inserted under the term too.
            won = await conn.fetchval(
                f"""
                INSERT INTO "{self.schema}".servcore_cron (name, last_tick)
                SELECT $1, $2 WHERE {leading}
                ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick
                WHERE servcore_cron.last_tick < excluded.last_tick
                RETURNING name
                """,
                name,
                tick,
                *fence_args,
            )
            if won is None or new_job is None:
                return None
            (job,) = await self._insert(conn, [new_job], now)
            await conn.execute(
                f'UPDATE "{self.schema}".servcore_cron SET last_job_id = $1 WHERE name = $2',
                job.id,
                name,
            )
            return job

    async def cron_last_jobs(self) -> dict[str, int]:
        rows = await self._fetch(
            f'SELECT name, last_job_id FROM "{self.schema}".servcore_cron '
            "WHERE last_job_id IS NOT NULL"
        )
        return {row["name"]: row["last_job_id"] for row in rows}

    async def cron_ticks(self) -> dict[str, datetime]:
        rows = await self._fetch(f'SELECT name, last_tick FROM "{self.schema}".servcore_cron')
        return {row["name"]: row["last_tick"] for row in rows}

    async def finished_per_minute(self, since: datetime) -> list[FinishedTally]:
        rows = await self._fetch(
            f"""
            SELECT date_trunc('minute', finished_at AT TIME ZONE 'UTC') AS minute, queue, status,
                   count(*) AS n
            FROM {self._jobs}
            WHERE status IN ('done', 'failed', 'cancelled') AND finished_at >= $1
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,
            since,
        )
        return [
            FinishedTally(row["minute"].replace(tzinfo=UTC), row["queue"], row["status"], row["n"])
            for row in rows
        ]

    async def expire_results(self, now: datetime, *, fence: LeaderTerm | None = None) -> int:
        return await self._delete_in_chunks(
            f"result_ttl IS NOT NULL AND {EXPIRES_AT} <= ($1::timestamptz AT TIME ZONE 'UTC') "
            "AND status IN ('done', 'failed', 'cancelled')",
            fence,
            now,
        )

    # -- reads ------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        rows = await self._fetch(f"SELECT {COLUMNS} FROM {self._jobs} WHERE id = $1", job_id)
        return row_to_job(rows[0]) if rows else None

    def _listing(self, query: JobQuery, now: datetime) -> Listing:
        return Listing(
            query, now, jobs=self._jobs, columns=COLUMNS, binder=Binder("$"), search_clause=_search
        )

    async def list_jobs(self, query: JobQuery, now: datetime) -> JobPage:
        """See ``store.listing_sql``: every statement reads an index newest first."""
        listing = self._listing(query, now)
        async with (
            self._errors("job listing"),
            self._ready_pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(listing.page(), *listing.values)
            steps = listing.total(len(rows))
            try:
                ask = next(steps)
                while True:
                    kind, sql, values = ask
                    if kind == "scope":
                        answer: Any = listing.scope_total(await self._tallies(conn, now))
                    else:
                        answer = await conn.fetchrow(sql, *values)
                    ask = steps.send(answer)
            except StopIteration as done:
                total, exact = done.value
        return JobPage([row_to_job(row) for row in rows], total, exact)

    async def matching_ids(self, query: JobQuery, now: datetime) -> list[int]:
        listing = self._listing(query, now)
        rows = await self._fetch(listing.ids(), *listing.count_values)
        return [row["id"] for row in rows]

    async def count_jobs(self, now: datetime) -> JobCounts:
        return counts_of(await self.list_queues(now))

    async def next_run_at(self, queue: str) -> datetime | None:
        rows = await self._fetch(
            f"""
            SELECT least(
                (SELECT min(run_at) FROM {self._jobs} WHERE status = 'queued' AND queue = $1),
                (SELECT min(run_at) FROM {self._jobs} WHERE status = 'scheduled' AND queue = $1)
            ) AS earliest
            """,
            queue,
        )
        earliest: datetime | None = rows[0]["earliest"]
        return earliest


def _search(id_placeholder: str, text_placeholder: str) -> str:
    # translate(), not lower(): ASCII letters only, as on the other stores.
    return (
        f"(id = {id_placeholder} OR strpos(translate(payload::text, "
        f"'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), {text_placeholder}) > 0)"
    )


def _stale(sent: Sequence[Lease | Completion | Failure], rows: list[asyncpg.Record]) -> list[int]:
    written = {row["id"] for row in rows}
    return [item.id for item in sent if item.id not in written]
