"""The PostgreSQL schema, versioned; ``migrate`` brings a database forward.

Tables live in a schema of the user's choice (``?schema=`` in the store URL,
default ``public``) under ``servcore_``-prefixed names, so two services can
share one database. Stored ``status`` has the value ``scheduled`` for a
queued job whose ``run_at`` was ahead when it was written, as on SQLite (see
``store.sqlite.schema``): claims read the ready index without stepping over them.
JSON columns are ``json``, not ``jsonb``: jsonb refuses ``\u0000``, which a
payload (or an exception message) may well contain.
"""

from __future__ import annotations

import re

import asyncpg

from servcore.store.job_columns import OPTIONAL_COLUMNS
from servcore.store.queue_sql import FINISHED

SCHEMA_VERSION = 9
# When a finished job with a result_ttl expires (NULL while it runs), in UTC
# wall time: timestamptz arithmetic is not immutable, so it cannot be indexed.
EXPIRES_AT = "(finished_at AT TIME ZONE 'UTC') + result_ttl * interval '1 second'"

# Advisory lock namespaces (the first key of the two-key form), so that a
# user's unique_key can never hash onto the migration or the leader lock.
LOCK_MIGRATE = 7301
LOCK_UNIQUE = 7303  # 7302 was the leader's, before leadership became a lease row
LOCK_QUEUE = 7304  # claims hold it shared, pausing exclusive
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def valid_schema_name(name: str) -> bool:
    return bool(_NAME.match(name))


def _migrations(schema: str) -> dict[int, list[str]]:
    jobs = f'"{schema}".servcore_jobs'
    return {
        1: [
            f"""
            CREATE TABLE {jobs} (
                id            BIGSERIAL PRIMARY KEY,
                queue         TEXT        NOT NULL,
                task          TEXT        NOT NULL,
                payload       JSON        NOT NULL,
                status        TEXT        NOT NULL,
                priority      SMALLINT    NOT NULL DEFAULT 0,
                attempt       INTEGER     NOT NULL DEFAULT 0,
                max_attempts  INTEGER     NOT NULL,
                run_at        TIMESTAMPTZ NOT NULL,
                inserted_at   TIMESTAMPTZ NOT NULL,
                started_at    TIMESTAMPTZ,
                finished_at   TIMESTAMPTZ,
                result        JSON,
                errors        JSON        NOT NULL DEFAULT '[]',
                unique_key    TEXT,
                timeout       DOUBLE PRECISION,
                backoff       DOUBLE PRECISION,
                locked_by     TEXT,
                locked_until  TIMESTAMPTZ,
                lease_token   BIGINT      NOT NULL DEFAULT 0,
                rescued       INTEGER     NOT NULL DEFAULT 0
            )
            """,
            f"CREATE INDEX servcore_jobs_ready ON {jobs} (queue, priority, id) "
            "WHERE status = 'queued'",
            f"CREATE INDEX servcore_jobs_scheduled ON {jobs} (queue, run_at) "
            "WHERE status = 'scheduled'",
            f"CREATE INDEX servcore_jobs_leases ON {jobs} (locked_until) WHERE status = 'running'",
            f"CREATE INDEX servcore_jobs_status ON {jobs} (status)",
            f"CREATE INDEX servcore_jobs_finished ON {jobs} (finished_at) "
            "WHERE status IN ('done', 'failed', 'cancelled')",
        ],
        2: [
            f"""
            CREATE TABLE "{schema}".servcore_nodes (
                node          TEXT        PRIMARY KEY,
                started_at    TIMESTAMPTZ NOT NULL,
                heartbeat_at  TIMESTAMPTZ NOT NULL,
                queues        TEXT[]      NOT NULL,
                leader        BOOLEAN     NOT NULL
            )
            """,
        ],
        3: [
            f"CREATE INDEX servcore_jobs_unique ON {jobs} (unique_key, id) "
            "WHERE unique_key IS NOT NULL",
        ],
        4: [
            f"""
            CREATE TABLE "{schema}".servcore_queues (
                name    TEXT    PRIMARY KEY,
                paused  BOOLEAN NOT NULL DEFAULT false
            )
            """,
        ],
        5: [
            f"ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS result_ttl DOUBLE PRECISION",
            f"CREATE INDEX servcore_jobs_expiry ON {jobs} (({EXPIRES_AT})) "
            "WHERE result_ttl IS NOT NULL",
            f"""
            CREATE TABLE "{schema}".servcore_cron (
                name       TEXT        PRIMARY KEY,
                last_tick  TIMESTAMPTZ NOT NULL
            )
            """,
        ],
        6: [f"ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS trace_context TEXT"],
        7: _counted_history(schema, jobs),
        8: [f'ALTER TABLE "{schema}".servcore_cron ADD COLUMN IF NOT EXISTS last_job_id BIGINT'],
        # The leader lease (store.postgres.leader): one row, never deleted, so
        # that terms only go up.
        9: [
            f"""
            CREATE TABLE "{schema}".servcore_leader (
                id          INTEGER     PRIMARY KEY CHECK (id = 1),
                node        TEXT        NOT NULL,
                term        BIGINT      NOT NULL,
                expires_at  TIMESTAMPTZ NOT NULL
            )
            """,
        ],
    }


def _counted_history(schema: str, jobs: str) -> list[str]:
    """Finished jobs counted by triggers (see store.queue_sql), and indexed by
    indexes of finished rows only (an insert or a claim writes none of them).

    The triggers append changes to ``servcore_count_changes`` and never update
    a shared row, so writers on many nodes do not queue on one counter; the
    leader folds the changes into ``servcore_counts`` (``FOLD_COUNTS``), and a
    reader adds both up. Updates are counted once per statement from its
    transition tables: a batch of completions appends one row per queue."""
    changes = f'"{schema}".servcore_count_changes'
    function = f'"{schema}".servcore_count'
    return [
        f"""
        CREATE TABLE "{schema}".servcore_counts (
            queue   TEXT   NOT NULL,
            status  TEXT   NOT NULL,
            jobs    BIGINT NOT NULL,
            PRIMARY KEY (queue, status)
        )
        """,
        f"CREATE TABLE {changes} (queue TEXT NOT NULL, status TEXT NOT NULL, jobs BIGINT NOT NULL)",
        f"""
        INSERT INTO "{schema}".servcore_counts (queue, status, jobs)
        SELECT queue, status, count(*) FROM {jobs} WHERE {FINISHED} GROUP BY queue, status
        """,
        f"""
        CREATE FUNCTION {function}_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {changes} (queue, status, jobs) VALUES (NEW.queue, NEW.status, 1);
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION {function}_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {changes} (queue, status, jobs)
            SELECT queue, status, sum(change) FROM (
                SELECT queue, status, 1 AS change FROM after_rows WHERE {FINISHED}
                UNION ALL
                SELECT queue, status, -1 FROM before_rows WHERE {FINISHED}
            ) AS changed
            GROUP BY queue, status HAVING sum(change) <> 0;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION {function}_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {changes} (queue, status, jobs)
            SELECT queue, status, -count(*) FROM before_rows WHERE {FINISHED}
            GROUP BY queue, status;
            RETURN NULL;
        END $$
        """,
        # Jobs are inserted queued or scheduled: a row trigger whose condition
        # is false costs an insert next to nothing (a statement trigger would
        # build a transition table for every enqueue).
        f"""
        CREATE TRIGGER servcore_counted_insert AFTER INSERT ON {jobs}
        FOR EACH ROW WHEN (NEW.{FINISHED}) EXECUTE FUNCTION {function}_inserted()
        """,
        f"""
        CREATE TRIGGER servcore_counted_update AFTER UPDATE ON {jobs}
        REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {function}_updated()
        """,
        f"""
        CREATE TRIGGER servcore_counted_delete AFTER DELETE ON {jobs}
        REFERENCING OLD TABLE AS before_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {function}_deleted()
        """,
        f'DROP INDEX "{schema}".servcore_jobs_status',
        f"CREATE INDEX servcore_jobs_finished_status ON {jobs} (status, id) WHERE {FINISHED}",
        f"CREATE INDEX servcore_jobs_finished_queue ON {jobs} (queue, id) WHERE {FINISHED}",
        f"CREATE INDEX servcore_jobs_finished_task ON {jobs} (task, id) WHERE {FINISHED}",
    ]


def fold_counts_sql(schema: str) -> str:
    """Move the appended count changes into the counts, in one statement."""
    return f"""
        WITH moved AS (DELETE FROM "{schema}".servcore_count_changes RETURNING queue, status, jobs)
        INSERT INTO "{schema}".servcore_counts AS counts (queue, status, jobs)
        SELECT queue, status, sum(jobs) FROM moved GROUP BY queue, status
        ON CONFLICT (queue, status) DO UPDATE SET jobs = counts.jobs + excluded.jobs
    """


def finished_counts_sql(schema: str) -> str:
    """(queue, status, jobs) of finished jobs: the counts plus the changes not folded yet."""
    return f"""
        SELECT queue, status, sum(jobs)::bigint FROM (
            SELECT queue, status, jobs FROM "{schema}".servcore_counts
            UNION ALL
            SELECT queue, status, jobs FROM "{schema}".servcore_count_changes
        ) AS counted
        GROUP BY queue, status HAVING sum(jobs) <> 0
    """


async def migrate(
    conn: asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    schema: str,
) -> int:
    """Create or upgrade the schema. Safe when several nodes start at once:
    they queue on a transaction-scoped advisory lock, and each sees the
    version the one before it left."""
    async with conn.transaction():
        # Another node may be migrating, or building an index on a large table:
        # the store's usual timeouts are for its hot statements, not for this.
        await conn.execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_MIGRATE, f"migrate:{schema}"
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".servcore_meta '
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        current = await conn.fetchval(
            f"SELECT value FROM \"{schema}\".servcore_meta WHERE key = 'schema_version'"
        )
        version = int(current) if current is not None else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {version}, newer than this servcore "
                f"({SCHEMA_VERSION}); upgrade servcore"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _migrations(schema)[step]:
                await conn.execute(statement)
            await conn.execute(
                f'INSERT INTO "{schema}".servcore_meta (key, value) '
                "VALUES ('schema_version', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(step),
            )
        await _add_optional_columns(conn, schema)
    return SCHEMA_VERSION


async def _add_optional_columns(
    conn: asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    schema: str,
) -> None:
    """Add the job_columns the table lacks (only those: ALTER TABLE takes a lock
    that running workers would queue behind)."""
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'servcore_jobs'",
        schema,
    )
    present = {row["column_name"] for row in rows}
    for column in OPTIONAL_COLUMNS:
        if column.name not in present:
            await conn.execute(
                f'ALTER TABLE "{schema}".servcore_jobs ADD COLUMN {column.name} {column.postgres}'
            )
