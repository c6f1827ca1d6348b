"""The questions a reader asks of the jobs, and the answers it gets back.

Value types shared by every store (which answers them), the service and the
HTTP layer (which ask them and render the answers): nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import NamedTuple

from servcore.jobs import Job, JobStatus

# How far a listing counts, and page numbers reach, exactly: past it a total
# is an estimate and pages go on by keyset (``JobQuery.after_id``).
EXACT_COUNT_CAP = 10_000


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
    # Keyset paging: only jobs older than this id (the last of the previous page).
    after_id: int | None = None

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
    # False: ``total`` is an estimate (past the count cap of the SQL stores).
    exact: bool = True


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


class FinishedTally(NamedTuple):
    """How many ``jobs`` of a queue finished with ``status`` in one UTC ``minute``."""

    minute: datetime
    queue: str
    status: str
    jobs: int


@dataclass(frozen=True, slots=True)
class FinishedHistory:
    """Jobs done and failed in each of a run of whole UTC minutes (oldest
    first, the current one last), by queue."""

    minutes: tuple[datetime, ...]
    # queue -> (done, failed) per minute, aligned with ``minutes``
    by_queue: dict[str, tuple[list[int], list[int]]]

    @classmethod
    def of(cls, minutes: Sequence[datetime], tallies: Sequence[FinishedTally]) -> FinishedHistory:
        index = {minute: position for position, minute in enumerate(minutes)}
        by_queue: dict[str, tuple[list[int], list[int]]] = {}
        for tally in tallies:
            position = index.get(tally.minute)
            if position is None or tally.status not in ("done", "failed"):
                continue
            done, failed = by_queue.setdefault(
                tally.queue, ([0] * len(minutes), [0] * len(minutes))
            )
            (done if tally.status == "done" else failed)[position] += tally.jobs
        return cls(tuple(minutes), by_queue)

    def per_minute(self, queue: str | None = None) -> list[tuple[datetime, int, int]]:
        """(minute, done, failed) of one queue, or of all of them."""
        queues = [queue] if queue is not None else list(self.by_queue)
        done = [0] * len(self.minutes)
        failed = [0] * len(self.minutes)
        for name in queues:
            if name in self.by_queue:
                queue_done, queue_failed = self.by_queue[name]
                done = [a + b for a, b in zip(done, queue_done, strict=True)]
                failed = [a + b for a, b in zip(failed, queue_failed, strict=True)]
        return list(zip(self.minutes, done, failed, strict=True))

    def rate(self, queue: str, minutes: int) -> tuple[float, float]:
        """Done and failed per minute in ``queue`` over the last ``minutes``
        (the current, partial minute counts as one)."""
        done, failed = self.by_queue.get(queue, ([], []))
        return sum(done[-minutes:]) / minutes, sum(failed[-minutes:]) / minutes


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
