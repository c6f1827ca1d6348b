"""What both SQL stores write when they insert a job, and in which order.

:data:`INSERTED` and :func:`inserted_values` are the columns an insert
writes and their values, the same for both stores but for how each stores
JSON and times. The first schema's columns are read back in each store's
rows module (they need conversions: times, JSON, status). Every optional job
field added since is nullable and stored as it is — a number or text — so
one line here is all a SQL store needs: both add the missing column when
they open a database, write it from :class:`~servcore.jobs.NewJob` on
insert, and read it back into :class:`~servcore.jobs.Job` by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from servcore.jobs import NewJob


@dataclass(frozen=True, slots=True)
class OptionalColumn:
    name: str  # the field of Job and NewJob, and the column
    sqlite: str  # its SQLite type
    postgres: str  # its PostgreSQL type


OPTIONAL_COLUMNS = (
    OptionalColumn("result_ttl", "REAL", "DOUBLE PRECISION"),
    OptionalColumn("trace_context", "TEXT", "TEXT"),
)
OPTIONAL_NAMES = tuple(column.name for column in OPTIONAL_COLUMNS)

_values = attrgetter(*OPTIONAL_NAMES)


def optional_values(new: NewJob) -> tuple[Any, ...]:
    """The optional columns' values for inserting ``new``, in OPTIONAL_COLUMNS' order."""
    values = _values(new)
    return values if len(OPTIONAL_NAMES) > 1 else (values,)


# The columns an insert writes, in the order of inserted_values, with their
# PostgreSQL types (for unnest's arrays); the insert time comes apart.
INSERTED: tuple[tuple[str, str], ...] = (
    ("queue", "text"),
    ("task", "text"),
    ("payload", "text"),
    ("status", "text"),
    ("priority", "smallint"),
    ("max_attempts", "int"),
    ("run_at", "timestamptz"),
    ("unique_key", "text"),
    ("timeout", "float8"),
    ("backoff", "float8"),
    *((column.name, column.postgres) for column in OPTIONAL_COLUMNS),
)


def inserted_values(
    new: NewJob,
    now: datetime,
    json_text: Callable[[Any], Any],
    time: Callable[[datetime], Any],
) -> tuple[Any, ...]:
    """The values of INSERTED for ``new`` inserted at ``now``: the payload as
    ``json_text`` and the run time as ``time`` store them. A job due later
    than now is stored ``scheduled`` (see the stores' schema modules)."""
    return (
        new.queue,
        new.task,
        json_text(new.payload),
        "queued" if new.run_at <= now else "scheduled",
        new.priority,
        new.max_attempts,
        time(new.run_at),
        new.unique_key,
        new.timeout,
        new.backoff,
        *optional_values(new),
    )
