"""PostgreSQL rows to jobs, JSON to text, and the SQL pieces the store shares."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from servcore.jobs import Job, JobError, JobStatus
from servcore.store.job_columns import OPTIONAL_NAMES

# The first schema's columns (converted below), then the optional ones (as they are).
COLUMNS = ", ".join(
    (
        "id, queue, task, payload, status, priority, attempt, max_attempts, run_at, "
        "inserted_at, started_at, finished_at, result, errors, unique_key, timeout, "
        "backoff, locked_by, locked_until, lease_token, rescued",
        *OPTIONAL_NAMES,
    )
)
# What a lost or refused connection can raise: all become StoreError.
DATABASE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
_STATUSES = {status.value: status for status in JobStatus}
_STATUSES["scheduled"] = JobStatus.QUEUED
_encode = msgspec.json.Encoder().encode
_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
_decode_any = msgspec.json.Decoder().decode
_decode_errors = msgspec.json.Decoder(tuple[JobError, ...]).decode


def append_error(errors: str, error: str) -> str:
    """SQL appending the JSON object ``error`` to the JSON array column ``errors``."""
    return (
        f"(CASE WHEN {errors}::text = '[]' THEN '[' || {error} || ']' "
        f"ELSE left({errors}::text, -1) || ',' || {error} || ']' END)::json"
    )


def to_json(value: Any) -> str:
    return _encode(value).decode()


def row_to_job(row: asyncpg.Record) -> Job:
    errors = row["errors"]
    result = row["result"]
    return Job(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        payload=_decode_payload(row["payload"]),
        status=_STATUSES[row["status"]],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        run_at=row["run_at"],
        inserted_at=row["inserted_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=None if result is None else _decode_any(result),
        errors=_decode_errors(errors) if errors != "[]" else (),
        unique_key=row["unique_key"],
        timeout=row["timeout"],
        backoff=row["backoff"],
        locked_by=row["locked_by"],
        locked_until=row["locked_until"],
        lease_token=row["lease_token"],
        rescued=row["rescued"],
        **{name: row[name] for name in OPTIONAL_NAMES},
    )
