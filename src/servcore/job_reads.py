"""The questions a reader asks of the jobs, and the answers it gets back.

Value types shared by every store (which answers them), the service and the
HTTP layer (which ask them and render the answers): nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime

from servcore.jobs import Job, JobStatus


class StatusFilter:
    """The values ``list_jobs`` accepts for ``status``."""

    SCHEDULED = "scheduled"  # queued, run_at in the future
    AVAILABLE = "available"  # queued, due now
    ALL = frozenset({*(s.value for s in JobStatus), SCHEDULED, AVAILABLE})


@dataclass(frozen=True, slots=True)
class JobQuery:
    status: str | None = None
    queue: str | None = None
    offset: int = 0
    limit: int = 50
    task: str | None = None
    # The job with this id, or jobs whose payload (its JSON text, keys too)
    # contains it, ignoring the case of ASCII letters (the same on every
    # store). A scan: fine for a dashboard, not for a hot path.
    search: str | None = None

    @property
    def search_id(self) -> int:
        """The id the search names, or -1 (no job has it)."""
        text = self.search or ""
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1

    @property
    def search_text(self) -> str:
        return ascii_lower(self.search or "")


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = str.maketrans(_UPPER, _UPPER.lower())


def ascii_lower(text: str) -> str:
    """Lower ASCII letters only, as SQLite's lower() does; the stores agree on it."""
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    total: int


@dataclass(frozen=True, slots=True)
class JobCounts:
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    scheduled: int = 0

    @classmethod
    def from_statuses(cls, by_status: dict[str, int], scheduled: int) -> JobCounts:
        """From counts by stored status (where ``scheduled`` is a kind of queued)."""
        return cls(
            queued=by_status.get("queued", 0) + by_status.get("scheduled", 0),
            running=by_status.get("running", 0),
            done=by_status.get("done", 0),
            failed=by_status.get("failed", 0),
            cancelled=by_status.get("cancelled", 0),
            scheduled=scheduled,
        )

    @classmethod
    def sum(cls, counts: Sequence[JobCounts]) -> JobCounts:
        """The counts of several stores, added up."""
        return cls(*(sum(column) for column in zip(*(astuple(c) for c in counts), strict=True)))

    @property
    def total(self) -> int:
        return self.queued + self.running + self.done + self.failed + self.cancelled

    @property
    def available(self) -> int:
        return self.queued - self.scheduled


@dataclass(frozen=True, slots=True)
class Insertion:
    """What became of a job with a ``unique_key`` (see ``insert_unique``).

    ``outcome`` is ``created`` (a new job), ``existing`` (a job with the same
    key and payload was already there: that one) or ``conflict`` (the key is
    taken by a job with another payload: that one, nothing stored).
    """

    job: Job
    outcome: str


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue as the store sees it (``GET /queues``)."""

    name: str
    paused: bool
    available: int
    scheduled: int
    running: int
    done: int
    failed: int
    cancelled: int
    oldest_available_at: datetime | None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A worker process as it last reported itself."""

    node: str
    started_at: datetime
    heartbeat_at: datetime
    queues: tuple[str, ...]
    leader: bool


# A queue whose oldest ready job has waited this long (seconds) while no live
# worker node runs the queue is flagged: a typo'd queue name, or workers gone.
UNSERVED_AFTER = 60.0


def unserved_queues(
    listing: Iterable[QueueInfo], served: Collection[str], now: datetime
) -> dict[str, QueueInfo]:
    """The queues of ``listing`` that have had a job ready for longer than
    :data:`UNSERVED_AFTER` and that no queue in ``served`` (the queues live
    nodes run) covers, by name."""
    flagged = {}
    for info in listing:
        oldest = info.oldest_available_at
        if info.name in served or info.available == 0 or oldest is None:
            continue
        if (now - oldest).total_seconds() > UNSERVED_AFTER:
            flagged[info.name] = info
    return flagged
