"""The SQLite schema, versioned; ``migrate`` brings any older file forward.

Stored ``status`` has one value the model does not: ``scheduled``, a queued
job whose ``run_at`` was in the future when it was written. Keeping those
apart lets the claim query read the ready index in (priority, id) order
without stepping over future jobs; a claim first *stages* the scheduled jobs
that have come due. Readers map ``scheduled`` back to ``queued``.
Timestamps are integer microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import sqlite3

from servcore.store.job_columns import OPTIONAL_COLUMNS
from servcore.store.queue_sql import FINISHED

SCHEMA_VERSION = 9
# When a finished job with a result_ttl expires (NULL while it runs): the
# expiry query repeats this expression so that it reads the index.
EXPIRES_AT = "finished_at + CAST(result_ttl * 1000000 AS INTEGER)"


def _count_change(row: str, sign: str) -> str:
    """The trigger statement adding ``sign`` 1 to the count of ``row``'s
    (queue, status) when that status is a finished one."""
    return f"""
        INSERT INTO servcore_counts (queue, status, jobs)
        SELECT {row}.queue, {row}.status, {sign}1 WHERE {row}.{FINISHED}
        ON CONFLICT (queue, status) DO UPDATE SET jobs = jobs + excluded.jobs;
    """


# Finished jobs are counted by triggers (see store.queue_sql), and indexed
# only by indexes of finished rows: an insert (always queued or scheduled)
# writes neither, and a listing of history reads an index in id order.
_COUNTED_HISTORY = [
    """
    CREATE TABLE servcore_counts (
        queue   TEXT    NOT NULL,
        status  TEXT    NOT NULL,
        jobs    INTEGER NOT NULL,
        PRIMARY KEY (queue, status)
    ) WITHOUT ROWID
    """,
    f"""
    INSERT INTO servcore_counts (queue, status, jobs)
    SELECT queue, status, count(*) FROM jobs WHERE {FINISHED} GROUP BY queue, status
    """,
    f"""
    CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs WHEN NEW.{FINISHED}
    BEGIN {_count_change("NEW", "+")} END
    """,
    f"""
    CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs WHEN OLD.{FINISHED}
    BEGIN {_count_change("OLD", "-")} END
    """,
    f"""
    CREATE TRIGGER jobs_counted_update AFTER UPDATE OF status, queue ON jobs
    WHEN (OLD.{FINISHED} OR NEW.{FINISHED})
        AND (OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue)
    BEGIN {_count_change("OLD", "-")} {_count_change("NEW", "+")} END
    """,
    "DROP INDEX jobs_status",
    f"CREATE INDEX jobs_finished_status ON jobs (status) WHERE {FINISHED}",
    f"CREATE INDEX jobs_finished_queue ON jobs (queue) WHERE {FINISHED}",
    f"CREATE INDEX jobs_finished_task ON jobs (task) WHERE {FINISHED}",
]

_MIGRATIONS: dict[int, str | list[str]] = {
    1: """
    CREATE TABLE jobs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        queue         TEXT    NOT NULL,
        task          TEXT    NOT NULL,
        payload       TEXT    NOT NULL,
        status        TEXT    NOT NULL,
        priority      INTEGER NOT NULL DEFAULT 0,
        attempt       INTEGER NOT NULL DEFAULT 0,
        max_attempts  INTEGER NOT NULL,
        run_at        INTEGER NOT NULL,
        inserted_at   INTEGER NOT NULL,
        started_at    INTEGER,
        finished_at   INTEGER,
        result        TEXT,
        errors        TEXT    NOT NULL DEFAULT '[]',
        unique_key    TEXT,
        timeout       REAL,
        backoff       REAL,
        locked_by     TEXT,
        locked_until  INTEGER,
        lease_token   INTEGER NOT NULL DEFAULT 0,
        rescued       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_ready ON jobs (queue, priority, id) WHERE status = 'queued';
    CREATE INDEX jobs_scheduled ON jobs (queue, run_at) WHERE status = 'scheduled';
    CREATE INDEX jobs_leases ON jobs (locked_until) WHERE status = 'running';
    CREATE INDEX jobs_status ON jobs (status);
    CREATE INDEX jobs_finished ON jobs (finished_at)
        WHERE status IN ('done', 'failed', 'cancelled');
    """,
    2: """
    CREATE TABLE servcore_nodes (
        node          TEXT    PRIMARY KEY,
        started_at    INTEGER NOT NULL,
        heartbeat_at  INTEGER NOT NULL,
        queues        TEXT    NOT NULL,
        leader        INTEGER NOT NULL
    );
    """,
    3: """
    CREATE INDEX jobs_unique ON jobs (unique_key, id) WHERE unique_key IS NOT NULL;
    """,
    4: """
    CREATE TABLE servcore_queues (
        name    TEXT    PRIMARY KEY,
        paused  INTEGER NOT NULL DEFAULT 0
    );
    """,
    5: f"""
    ALTER TABLE jobs ADD COLUMN result_ttl REAL;
    CREATE INDEX jobs_expiry ON jobs ({EXPIRES_AT}) WHERE result_ttl IS NOT NULL;
    CREATE TABLE servcore_cron (
        name       TEXT    PRIMARY KEY,
        last_tick  INTEGER NOT NULL
    );
    """,
    6: """
    ALTER TABLE jobs ADD COLUMN trace_context TEXT;
    """,
    7: _COUNTED_HISTORY,
    8: """
    ALTER TABLE servcore_cron ADD COLUMN last_job_id INTEGER;
    """,
    # The leader lease (store.sqlite.leader): one row, never deleted, so that
    # terms only go up.
    9: """
    CREATE TABLE servcore_leader (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        node        TEXT    NOT NULL,
        term        INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    """,
}


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS servcore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    )
    row = conn.execute("SELECT value FROM servcore_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's version, in one transaction.

    Runs inside the writer's transaction (``BEGIN IMMEDIATE``), so two
    processes starting on one file do not both migrate it.
    """
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database has schema version {current}, newer than this servcore "
            f"({SCHEMA_VERSION}); upgrade servcore"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        steps = _MIGRATIONS[version]
        for statement in steps.split(";") if isinstance(steps, str) else steps:
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO servcore_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )
    present = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    for column in OPTIONAL_COLUMNS:
        if column.name not in present:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {column.name} {column.sqlite}")
    return SCHEMA_VERSION
