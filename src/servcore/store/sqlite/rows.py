"""Turning SQLite rows into jobs and jobs' parts into column values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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
_FIRST = 21  # the first schema's columns; Job's fields after these are OPTIONAL_NAMES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STATUSES = {status.value: status for status in JobStatus}
_STATUSES["scheduled"] = JobStatus.QUEUED

_encode = msgspec.json.Encoder().encode


def encode_json(value: Any) -> str:
    """JSON as TEXT: SQLite's json functions read BLOBs as JSONB in some versions."""
    return _encode(value).decode()


_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
_decode_any = msgspec.json.Decoder().decode
_decode_errors = msgspec.json.Decoder(tuple[JobError, ...]).decode


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def time_from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def row_to_job(row: tuple[Any, ...]) -> Job:
    (
        job_id,
        queue,
        task,
        payload,
        status,
        priority,
        attempt,
        max_attempts,
        run_at,
        inserted_at,
        started_at,
        finished_at,
        result,
        errors,
        unique_key,
        timeout,
        backoff,
        locked_by,
        locked_until,
        lease_token,
        rescued,
    ) = row[:_FIRST]
    # Positional, in Job's field order: the optional columns come last in both.
    return Job(
        job_id,
        queue,
        task,
        _decode_payload(payload),
        _STATUSES[status],
        priority,
        attempt,
        max_attempts,
        time_from_micros(run_at),
        time_from_micros(inserted_at),
        from_micros(started_at),
        from_micros(finished_at),
        None if result is None else _decode_any(result),
        _decode_errors(errors) if errors != "[]" else (),
        unique_key,
        timeout,
        backoff,
        locked_by,
        from_micros(locked_until),
        lease_token,
        rescued,
        *row[_FIRST:],
    )
