"""The job fields both SQL stores keep in a column of the same name, as they are.

The first schema's columns are written out in each store's schema and rows
modules (they need conversions: times, JSON, status). Every optional job
field added since is nullable and stored as it is — a number or text — so
one line here is all a SQL store needs: both add the missing column when
they open a database, write it from :class:`~servcore.jobs.NewJob` on
insert, and read it back into :class:`~servcore.jobs.Job` by name.
"""

from __future__ import annotations

from dataclasses import dataclass
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
