"""What a stress round is judged by, besides the HTTP answers: the executions
file, the processes' logs, and the store's own rows."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from tests.stress.http_load import COUNTED_QUEUE


class Executions:
    """The ``RECORD_FILE`` the ``record`` task appends "job-id node" to, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: Counter[int] = Counter()
        self._offset = 0
        path.touch()

    def read_new(self) -> Counter[int]:
        """The executions recorded since the last call (whole lines only)."""
        with self.path.open("rb") as file:
            file.seek(self._offset)
            text = file.read()
        complete = text[: text.rfind(b"\n") + 1]
        self._offset += len(complete)
        new = Counter(int(line.split()[0]) for line in complete.splitlines())
        self.runs.update(new)
        return new

    @property
    def total(self) -> int:
        return sum(self.runs.values())


# Lines that mean a run was taken from a live node, or an outcome was lost.
ALARMS = {
    "Rescued": "a rescue",
    "stale fencing token": "an outcome refused as stale",
    "no longer held here": "a run stopped as lost",
    "[error]": "an error",
    "[critical]": "a critical error",
    "Traceback": "a traceback",
}


class LogWatch:
    """One process's log, read as it grows: alarming lines and other warnings."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._offset = 0

    def read_new(self) -> tuple[list[str], list[str]]:
        """(alarms, other warnings) logged since the last call, each line prefixed by the node."""
        with self.path.open("rb") as file:
            file.seek(self._offset)
            text = file.read()
        complete = text[: text.rfind(b"\n") + 1]
        self._offset += len(complete)
        alarms: list[str] = []
        warnings: list[str] = []
        for line in complete.decode(errors="replace").splitlines():
            if any(mark in line for mark in ALARMS):
                alarms.append(f"{self.name}: {line}")
            elif "[warning]" in line:
                warnings.append(f"{self.name}: {line}")
        return alarms, warnings


@dataclass(frozen=True, slots=True)
class StoreRows:
    """The counted queue's jobs as the store has them."""

    jobs: int
    done: int
    failed: int
    rescued: int  # jobs with rescued > 0
    reattempted: int  # jobs with attempt > 1


def store_rows(url: str) -> StoreRows:
    """Read the counted queue's rows straight from the store (PostgreSQL or SQLite)."""
    if url.startswith("sqlite:"):
        return _sqlite_rows(url)
    return asyncio.run(_postgres_rows(url))


_COUNTS = (
    "count(*), "
    "coalesce(sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN rescued > 0 THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN attempt > 1 THEN 1 ELSE 0 END), 0)"
)


def _sqlite_rows(url: str) -> StoreRows:
    path = urlsplit(url).path
    path = path[1:] if path.startswith("//") else path  # sqlite:////abs -> /abs
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(f"SELECT {_COUNTS} FROM jobs WHERE queue = ?", (COUNTED_QUEUE,))
        return StoreRows(*(int(value) for value in row.fetchone()))
    finally:
        conn.close()


async def _postgres_rows(url: str) -> StoreRows:
    parts = urlsplit(url)
    schema = dict(pair.split("=", 1) for pair in parts.query.split("&") if pair).get(
        "schema", "public"
    )
    conn = await asyncpg.connect(parts._replace(query="").geturl(), timeout=10)
    try:
        row = await conn.fetchrow(
            f'SELECT {_COUNTS} FROM "{schema}".servcore_jobs WHERE queue = $1', COUNTED_QUEUE
        )
    finally:
        await conn.close()
    assert row is not None
    return StoreRows(*(int(value) for value in row))
