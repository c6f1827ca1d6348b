"""What a job request must satisfy, and the errors that say it does not.

Checked once, at the edge (HTTP, CLI, Python API), so that a bad request is a
clear 400 or a one-line error, never a store error later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from servcore.errors import ServcoreError
from servcore.jobs import MAX_PRIORITY, Job, task_name, valid_queue_name

MAX_ATTEMPTS_LIMIT = 1000
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_DELAY = 365 * 24 * 3600.0
MAX_BACKOFF = 86400.0


class JobRequestError(ServcoreError, ValueError):
    """A job request that cannot be accepted; the message says what to fix."""


class JobStateError(JobRequestError):
    """The job is not in a state that allows what was asked."""


class UniqueConflict(JobRequestError):
    """The ``unique_key`` belongs to a recent job with a different payload."""

    def __init__(self, existing: Job) -> None:
        super().__init__(
            f"unique_key {existing.unique_key!r} is already used by job {existing.id} "
            "with a different payload"
        )
        self.existing = existing


def check_job_request(
    payload: Any,
    *,
    queue: str | None,
    run_at: datetime | None,
    delay: float | None,
    priority: int,
    max_attempts: int | None,
    timeout: float | None,
    backoff: float | None,
    unique_key: str | None,
    result_ttl: float | None,
) -> None:
    """Raise :class:`JobRequestError` naming the first option out of bounds."""
    if not isinstance(payload, dict):
        raise JobRequestError("'payload' must be a JSON object")
    checks = [
        (run_at is not None and delay is not None, "give 'run_at' or 'delay', not both"),
        (run_at is not None and run_at.tzinfo is None, "'run_at' needs a time zone"),
        (
            delay is not None and not 0 <= delay <= MAX_DELAY,
            f"'delay' must be between 0 and {MAX_DELAY:g} seconds",
        ),
        (not 0 <= priority <= MAX_PRIORITY, f"'priority' must be between 0 and {MAX_PRIORITY}"),
        (
            max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT,
            f"'max_attempts' must be between 1 and {MAX_ATTEMPTS_LIMIT}",
        ),
        (
            timeout is not None and not 0 < timeout <= MAX_TIMEOUT,
            f"'timeout' must be > 0 and at most {MAX_TIMEOUT:g} seconds",
        ),
        (
            backoff is not None and not 0 <= backoff <= MAX_BACKOFF,
            f"'backoff' must be between 0 and {MAX_BACKOFF:g} seconds",
        ),
        (
            result_ttl is not None and not 0 < result_ttl <= MAX_DELAY,
            f"'result_ttl' must be > 0 and at most {MAX_DELAY:g} seconds",
        ),
        (
            queue is not None and not valid_queue_name(queue),
            "'queue' must be 1-100 letters, digits, '_', '-' or '.'",
        ),
        # Text columns cannot hold NUL (PostgreSQL refuses it): a 400, not a 503.
        (
            "\x00" in task_name(payload) or (unique_key is not None and "\x00" in unique_key),
            "'task' and 'unique_key' must not contain NUL characters",
        ),
    ]
    problem = next((message for failed, message in checks if failed), None)
    if problem is not None:
        raise JobRequestError(problem)
