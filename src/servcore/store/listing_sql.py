"""``GET /jobs`` on both SQL stores: pages that read an index, whatever the history.

A listing is newest first. It is cut into *arms*, one per kind of row an
index holds in id order: queued, scheduled and running jobs (each a partial
index of live work, small), and finished jobs (the finished-only indexes on
status, queue and task, each ordered by id within its key). Every arm reads
at most ``offset + limit`` rows newest first and the arms are merged, so a
page costs the same with ten million finished jobs as with ten thousand.
A listing with no filter walks the primary key instead.

Keyset pages (``after_id``: the last id of the previous page) cost the same
at any depth; page numbers are bounded by the HTTP layer (see
``EXACT_COUNT_CAP``). The total is exact: from the tallies (see
``store.queue_sql``) when the filter is status and queue only, else counted
up to ``EXACT_COUNT_CAP`` and, past it, estimated from a sample of the
newest jobs in scope.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

from servcore.job_reads import EXACT_COUNT_CAP, JobQuery, QueueInfo, StatusFilter
from servcore.store.queue_sql import FINISHED

__all__ = ["ESTIMATE_SAMPLE", "EXACT_COUNT_CAP", "Binder", "Listing", "estimate"]
# Newest jobs in scope read to estimate a total past the cap.
ESTIMATE_SAMPLE = 10_000

_QUEUED, _SCHEDULED, _RUNNING = "status = 'queued'", "status = 'scheduled'", "status = 'running'"
# Each arm: the index that serves it (its name after ``jobs_``; None where a
# finished arm picks its index by the filters) and its condition.
_ARMS: dict[str | None, list[tuple[str | None, str]]] = {
    None: [("ready", _QUEUED), ("scheduled", _SCHEDULED), ("leases", _RUNNING), (None, FINISHED)],
    "queued": [("ready", _QUEUED), ("scheduled", _SCHEDULED)],
    "running": [("leases", _RUNNING)],
    "done": [(None, f"status = 'done' AND {FINISHED}")],
    "failed": [(None, f"status = 'failed' AND {FINISHED}")],
    "cancelled": [(None, f"status = 'cancelled' AND {FINISHED}")],
    StatusFilter.SCHEDULED: [("scheduled", f"{_SCHEDULED} AND run_at > :now")],
    StatusFilter.AVAILABLE: [("ready", _QUEUED), ("scheduled", f"{_SCHEDULED} AND run_at <= :now")],
}


class Binder:
    """Numbered placeholders (``?1`` on SQLite, ``$1`` on PostgreSQL) and their values."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"{self.prefix}{len(self.values)}"


Ask = tuple[str, str, list[Any]]
"""What :meth:`Listing.total` asks a store: ("row", sql, values) or ("scope", "", [])."""
_SCOPE: Ask = ("scope", "", [])

SearchClause = Callable[[str, str], str]
"""SQL matching a search, given the placeholders of its id and its text."""

IndexHint = Callable[[str | None], str]
"""What follows the table's name to make the store read the index named
(``ready``, ``finished_status``…; None: the primary key). SQLite, planning
without statistics, needs it; PostgreSQL plans well alone."""


def no_hint(index: str | None) -> str:
    return ""


class Listing:
    """The SQL of one ``GET /jobs`` question, for one store's dialect."""

    def __init__(
        self,
        query: JobQuery,
        now: Any,
        *,
        jobs: str,
        columns: str,
        binder: Binder,
        search_clause: SearchClause,
        index_hint: IndexHint = no_hint,
    ) -> None:
        self.query = query
        self._jobs = jobs
        self._columns = columns
        self._hint = index_hint
        self._bind = binder
        arms = _ARMS[query.status]
        if any(":now" in condition for _, condition in arms):
            now_placeholder = binder(now)
            arms = [(index, cond.replace(":now", now_placeholder)) for index, cond in arms]
        # A listing with no filter at all reads the primary key, newest first.
        if query.status is None and query.queue is None and query.task is None:
            arms = [("primary", "1 = 1")]
        self._arms = arms
        self._scope_filters = [f"queue = {binder(query.queue)}"] if query.queue is not None else []
        self._task = [f"task = {binder(query.task)}"] if query.task is not None else []
        # The statements that leave the search out take the values before it.
        self._unsearched_values = list(binder.values)
        self._search = (
            [search_clause(binder(query.search_id), binder(query.search_text))]
            if query.search
            else []
        )
        self._extra = [*self._task, *self._search]
        # Bound last: the counts, which ignore it, take the values before it.
        self._counted_values = list(binder.values)
        self._after = [f"id < {binder(query.after_id)}"] if query.after_id is not None else []

    @property
    def values(self) -> list[Any]:
        """The values of :meth:`page`."""
        return self._bind.values

    @property
    def count_values(self) -> list[Any]:
        """The values of :meth:`capped_count` and :meth:`sample`."""
        return self._counted_values

    def total_from_page(self, rows: int) -> int | None:
        """The total when the page itself tells it: a short page that is not
        past the end says every match is on it or before it (``offset`` of
        them), and saves a second reading of what a filter scans (``q``)."""
        query = self.query
        if query.after_id is None and rows < query.limit and (rows or query.offset == 0):
            return query.offset + rows
        return None

    @property
    def counts_from_tallies(self) -> bool:
        """Whether the tallies give the exact total (no task or search filter)."""
        return not self._extra

    def page(self) -> str:
        """The page's jobs, newest first. The arms read ids only (from their
        indexes); whole rows are read for the page alone, so a deep page
        costs little more than the first."""
        reach = self.query.offset + self.query.limit
        clauses = [*self._scope_filters, *self._extra, *self._after]
        ids = self._union("id", clauses, reach, filtered=True)
        page_ids = (
            f"SELECT id FROM ({ids}) AS ids ORDER BY id DESC "
            f"LIMIT {int(self.query.limit)} OFFSET {int(self.query.offset)}"
        )
        return f"SELECT {self._columns} FROM {self._jobs} WHERE id IN ({page_ids}) ORDER BY id DESC"

    def ids(self) -> str:
        """Every matching id (offset, limit and ``after_id`` aside), ascending:
        what a bulk action by filter acts on. Takes :attr:`count_values`."""
        clauses = [*self._scope_filters, *self._extra]
        ids = self._union("id", clauses, None, filtered=True)
        return f"SELECT id FROM ({ids}) AS ids ORDER BY id"

    def capped_count(self, *, search: bool = True) -> str:
        """How many match (``search``: the text search too), counted to one
        past ``EXACT_COUNT_CAP`` at most per arm."""
        clauses = [*self._scope_filters, *self._task, *(self._search if search else [])]
        ids = self._union("id", clauses, EXACT_COUNT_CAP + 1, filtered=True)
        return f"SELECT count(*) FROM ({ids}) AS counted"

    def sample(self) -> str:
        """(jobs read, of them of the task) among the newest ``ESTIMATE_SAMPLE``
        in scope (status and queue)."""
        return self._share(" AND ".join(self._task) or "1 = 1", self._scope_filters, False)

    def search_sample(self) -> str:
        """(jobs read, of them matching the search) among the newest
        ``ESTIMATE_SAMPLE`` of the status, queue and task: a search reads each
        payload, so this reads a bounded number of them whatever the history."""
        return self._share(" AND ".join(self._search), [*self._scope_filters, *self._task], True)

    def _share(self, matches: str, clauses: list[str], filtered: bool) -> str:
        select = f"id, CASE WHEN {matches} THEN 1 ELSE 0 END AS hit"
        scope = self._union(select, clauses, ESTIMATE_SAMPLE, filtered=filtered)
        newest = f"SELECT hit FROM ({scope}) AS scope ORDER BY id DESC LIMIT {ESTIMATE_SAMPLE}"
        return f"SELECT count(*), coalesce(sum(hit), 0) FROM ({newest}) AS sample"

    def total(self, page_rows: int) -> Generator[Ask, Any, tuple[int, bool]]:
        """The total and whether it is exact, worked out by asking the store:
        yields ``("row", sql, values)`` (answer: the statement's one row) or
        ``("scope", "", [])`` (answer: :meth:`scope_total` of the tallies).
        Each store drives it in its own way; every statement asked for reads
        a bounded number of rows."""
        known = self.total_from_page(page_rows)
        if known is not None:
            return known, True
        if self.counts_from_tallies:
            return (yield _SCOPE), True
        if self._search:
            read, hits = yield ("row", self.search_sample(), self._counted_values)
            if read < ESTIMATE_SAMPLE:  # every job in scope was read
                return int(hits), True
            if self._task:
                scope = yield from self._task_total()
            else:
                scope = yield _SCOPE
            return max(int(hits), round(scope * hits / read)), False
        (counted,) = yield ("row", self.capped_count(), self._counted_values)
        if counted <= EXACT_COUNT_CAP:
            return int(counted), True
        return (yield from self._task_total()), False

    def _task_total(self) -> Generator[Ask, Any, int]:
        """The jobs of the task in scope: counted to the cap, estimated past it."""
        (counted,) = yield ("row", self.capped_count(search=False), self._unsearched_values)
        if counted <= EXACT_COUNT_CAP:
            return int(counted)
        read, hits = yield ("row", self.sample(), self._unsearched_values)
        return estimate((yield _SCOPE), read, hits)

    def _union(self, select: str, clauses: list[str], limit: int | None, *, filtered: bool) -> str:
        """Every arm's newest ``limit`` rows (all, for None) that meet ``clauses``."""
        return " UNION ALL ".join(
            f"SELECT * FROM (SELECT {select} FROM {self._jobs}"
            f"{self._hint(index or self._finished_index(filtered))} "
            f"WHERE {' AND '.join([condition, *clauses])}{_newest(index, limit)}) AS arm"
            for index, condition in self._arms
        )

    def _finished_index(self, filtered: bool) -> str | None:
        """The finished arm's index: the one on the most selective equality
        (``filtered``: the task and text filters apply), else the primary key."""
        if self.query.status is not None:
            return "finished_status"
        if self.query.queue is not None:
            return "finished_queue"
        if self.query.task is not None and filtered:
            return "finished_task"
        return None

    def scope_total(self, infos: Iterable[QueueInfo]) -> int:
        """The jobs in scope (status and queue), from the tallies."""
        total = 0
        for info in infos:
            if self.query.queue is None or info.name == self.query.queue:
                total += _in_status(info, self.query.status)
        return total


def _newest(index: str | None, limit: int | None) -> str:
    """An arm's order and limit. A live-work arm sorts what its partial index
    holds (``id + 0``): ordered by the bare id, PostgreSQL may walk the
    primary key backwards through all history looking for a few live rows."""
    if limit is None:
        return ""
    live = index in ("ready", "scheduled", "leases")
    return f" ORDER BY {'id + 0' if live else 'id'} DESC LIMIT {int(limit)}"


def _in_status(info: QueueInfo, status: str | None) -> int:
    waiting = info.available + info.scheduled
    by_filter = {
        None: waiting + info.running + info.done + info.failed + info.cancelled,
        "queued": waiting,
        "running": info.running,
        "done": info.done,
        "failed": info.failed,
        "cancelled": info.cancelled,
        StatusFilter.SCHEDULED: info.scheduled,
        StatusFilter.AVAILABLE: info.available,
    }
    return by_filter[status]


def estimate(scope_total: int, read: int, hits: int) -> int:
    """A total past the cap from a sample: the share of hits, scaled to the scope."""
    if read == 0:
        return EXACT_COUNT_CAP + 1
    return max(EXACT_COUNT_CAP + 1, round(scope_total * hits / read))
