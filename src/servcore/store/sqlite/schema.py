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

SCHEMA_VERSION = 6
# When a finished job with a result_ttl expires (NULL while it runs): the
# expiry query repeats this expression so that it reads the index.
EXPIRES_AT = "finished_at + CAST(result_ttl * 1000000 AS INTEGER)"

_MIGRATIONS: dict[int, str] = {
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
        for statement in _MIGRATIONS[version].split(";"):
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
