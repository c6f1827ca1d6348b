"""The job record, its states, and the request to create one.

:class:`JobRequest` is the one definition of what a client may ask for: each
field's type, range and default. HTTP validation, ``Service.build_job``, the
CLI's ``enqueue`` options and the OpenAPI schema are all derived from it (see
:mod:`servcore.job_requests`). A new optional job field is a field here (and on
:class:`NewJob` and :class:`Job` when it is stored), a store column, and the
code where it takes effect.

Jobs are pure data: stores build them, the runtime reads them, nothing here
does I/O. A job's life::

                      claim                  success
    queued ──────────────────▶ running ─────────────────▶ done
      ▲  (run_at > now:                │
      │   "scheduled")                 │ error, attempts left
      └────────────────────────────────┤   (run_at = now + backoff)
                                       │ error, last attempt / discard
                                       ├──────────────────▶ failed
                                       │ cancel
                                       └──────────────────▶ cancelled

A queued job whose ``run_at`` lies in the future is *scheduled*: it keeps the
seed's ``queued`` status (so clients that know only the four seed states keep
working) and is told apart by the ``scheduled`` flag, the ``scheduled`` status
filter and the ``scheduled`` count in ``/stats``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

# The job structs are made with gc=False: what they hold comes from JSON (or
# must go to JSON) and so cannot form a reference cycle, and leaving the
# garbage collector out of the three or four made per request keeps its full
# collections rare (POST /jobs p99 at saturation 12 → 7 ms, BENCHMARKS.md).
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE = 30.0  # seconds a claim holds a job between renewals
MAX_PRIORITY = 9
MAX_ATTEMPTS_LIMIT = 1000
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_DELAY = 365 * 24 * 3600.0
MAX_BACKOFF = 86400.0
MAX_UNIQUE_KEY = 255
MAX_QUEUE_NAME = 100
# Letters and digits of any script (Python's ``str.isalnum``), '_', '-', '.'.
QUEUE_NAME_PATTERN = r"^[\w.-]+$"
QUEUE_NAME_RULE = f"1-{MAX_QUEUE_NAME} letters, digits, '_', '-' or '.'"
# Text columns cannot hold NUL (PostgreSQL refuses it).
NO_NUL_PATTERN = "^[^\u0000]*$"


class JobStatus(enum.StrEnum):
    """Where a job is in its life. The first four are the seed's."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class JobError(msgspec.Struct, frozen=True, gc=False):
    """One failed attempt: which, when it ended (``at``), what went wrong and
    where, and when it started (None in records older than the field)."""

    attempt: int
    at: datetime
    error: str
    traceback: str | None = None
    started_at: datetime | None = None


SECONDS = {"unit": "seconds"}  # said after a range in messages


Payload = Annotated[
    dict[str, Any],
    Meta(
        description="Any JSON object; its 'task' (a string without NUL) names the handler.",
        extra_json_schema={
            "properties": {"task": {"not": {"type": "string", "pattern": "\u0000"}}}
        },
    ),
]
QueueName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_QUEUE_NAME,
        pattern=QUEUE_NAME_PATTERN,
        description="Letters and digits of any script, '_', '-' or '.'. "
        "Default: the task's queue, else 'default'.",
        extra={"rule": QUEUE_NAME_RULE},
    ),
]
# A time with a zone whose UTC value lies in years 1000-9998 (far enough from
# datetime's limits that any offset stays representable).
RunAt = Annotated[
    datetime,
    Meta(
        tz=True,
        description="Do not start before this time: RFC 3339 with a zone, years 1000-9998.",
        extra_json_schema={
            "pattern": "^(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-",
            "example": "2025-12-28T17:24:48.957749Z",
        },
    ),
]
UniqueKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_UNIQUE_KEY,
        pattern=NO_NUL_PATTERN,
        description="A repeated key within the service's unique period returns the "
        "earlier job instead of a new one.",
        extra={"rule": f"1 to {MAX_UNIQUE_KEY} characters, none of them NUL"},
    ),
]


class JobRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """What a client may ask for when it submits a job (``null`` = not given)."""

    payload: Payload
    queue: QueueName | None = None
    run_at: RunAt | None = None
    delay: (
        Annotated[float, Meta(ge=0, le=MAX_DELAY, description="Seconds from now.", extra=SECONDS)]
        | None
    ) = None
    priority: Annotated[
        int, Meta(ge=0, le=MAX_PRIORITY, description="Lower runs first within a queue.")
    ] = 0
    max_attempts: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_ATTEMPTS_LIMIT,
                description=f"Default: the task's, else {DEFAULT_MAX_ATTEMPTS}.",
            ),
        ]
        | None
    ) = None
    timeout: (
        Annotated[
            float,
            Meta(gt=0, le=MAX_TIMEOUT, description="Seconds one attempt may run.", extra=SECONDS),
        ]
        | None
    ) = None
    backoff: (
        Annotated[
            float,
            Meta(ge=0, le=MAX_BACKOFF, description="Base retry delay in seconds.", extra=SECONDS),
        ]
        | None
    ) = None
    unique_key: UniqueKey | None = None
    result_ttl: (
        Annotated[
            float,
            Meta(
                gt=0,
                le=MAX_DELAY,
                description="Seconds a finished job is kept before it is deleted (sooner "
                "than the service's retention); after that, GET answers 404.",
                extra=SECONDS,
            ),
        ]
        | None
    ) = None


class Job(msgspec.Struct, frozen=True, gc=False):
    """A stored job. Timestamps are aware UTC datetimes.

    ``lease_token`` is the fencing token of the current claim: it grows by one
    on every claim, and a worker's completion only counts while its token is
    still the job's (see ``store.base``).
    """

    id: int
    queue: str
    task: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    inserted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    errors: tuple[JobError, ...] = ()
    unique_key: str | None = None
    timeout: float | None = None
    backoff: float | None = None
    locked_by: str | None = None
    locked_until: datetime | None = None
    lease_token: int = 0
    rescued: int = 0
    result_ttl: float | None = None
    trace_context: (
        Annotated[
            str,
            Meta(description="W3C traceparent of the request that enqueued it (tracing on)."),
        ]
        | None
    ) = None

    def expired(self, now: datetime) -> bool:
        """True once a finished job has outlived its ``result_ttl``."""
        return (
            self.result_ttl is not None
            and self.finished_at is not None
            and (now - self.finished_at).total_seconds() >= self.result_ttl
        )

    def is_scheduled(self, now: datetime) -> bool:
        """True while the job is queued but not yet due."""
        return self.status is JobStatus.QUEUED and self.run_at > now


class NewJob(msgspec.Struct, frozen=True, gc=False):
    """What a caller asks for; the store turns it into a :class:`Job`."""

    payload: dict[str, Any]
    run_at: datetime
    queue: str = DEFAULT_QUEUE
    task: str = ""
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    unique_key: str | None = None
    timeout: float | None = None
    backoff: float | None = None
    result_ttl: float | None = None
    trace_context: str | None = None

    def stored(self, job_id: int, inserted_at: datetime) -> Job:
        """The job a store made of this request: queued, no attempt yet."""
        # Every field of NewJob is carried (tests/unit/test_jobs.py checks it).
        return Job(
            id=job_id,
            queue=self.queue,
            task=self.task,
            payload=self.payload,
            status=JobStatus.QUEUED,
            priority=self.priority,
            attempt=0,
            max_attempts=self.max_attempts,
            run_at=self.run_at,
            inserted_at=inserted_at,
            unique_key=self.unique_key,
            timeout=self.timeout,
            backoff=self.backoff,
            result_ttl=self.result_ttl,
            trace_context=self.trace_context,
        )


def task_name(payload: dict[str, Any]) -> str:
    """The handler name a payload asks for (the seed's ``payload.task``)."""
    task = payload.get("task")
    return task if isinstance(task, str) else ""


def valid_queue_name(name: str) -> bool:
    """1-100 letters, digits, ``_``, ``-`` or ``.``: safe in URLs, logs and notifications."""
    return 0 < len(name) <= 100 and all(c.isalnum() or c in "_-." for c in name)


def describe_error(error: BaseException) -> str:
    """``"TypeName: message"`` (or just the type name): a failed attempt's error text."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
