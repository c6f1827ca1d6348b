"""The one piece of work every handler does, and how the harness checks it.

Each job carries its number and the wall-clock time it was enqueued; its
handler notes the time it started and makes one Redis call: ``RPUSH`` of
``"<number> <enqueued_at> <started_at>"`` onto the phase's list. The list is
the ledger: every number ``0..N-1`` must be on it exactly once (none lost,
none run twice), and it carries what the latency and processing rates are
computed from. Warm-up jobs have negative numbers and are not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import cast

import redis
import redis.asyncio

from peers.place import REDIS_HOST, REDIS_PORT


def entry(number: int, enqueued_at: float, started_at: float) -> str:
    return f"{number} {enqueued_at!r} {started_at!r}"


class AsyncRecorder:
    """For ``async def`` handlers; its connection pool is made on first use,
    inside the worker's event loop."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._redis: redis.asyncio.Redis | None = None

    async def record(self, number: int, enqueued_at: float, started_at: float) -> None:
        if self._redis is None:
            self._redis = redis.asyncio.Redis(host=REDIS_HOST, port=REDIS_PORT)
        await cast(
            Awaitable[int], self._redis.rpush(self._key, entry(number, enqueued_at, started_at))
        )


class SyncRecorder:
    """For handlers run in threads (redis-py's pool is thread-safe)."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)

    def record(self, number: int, enqueued_at: float, started_at: float) -> None:
        self._redis.rpush(self._key, entry(number, enqueued_at, started_at))


@dataclass(frozen=True)
class Record:
    number: int
    enqueued_at: float
    started_at: float


@dataclass(frozen=True)
class Tally:
    """Which of the jobs ``0..expected-1`` ran not at all, or more than once."""

    expected: int
    missing: int
    duplicated: int
    stray: int  # numbers outside 0..expected-1 (and not warm-ups)
    examples: tuple[int, ...]  # a few of the numbers at fault

    @property
    def exactly_once(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.stray == 0

    def describe(self) -> str:
        if self.exactly_once:
            return f"all {self.expected} ran exactly once"
        return (
            f"{self.missing} never ran, {self.duplicated} ran more than once, "
            f"{self.stray} unknown (e.g. {list(self.examples)})"
        )


def tally(records: Iterable[Record], expected: int) -> Tally:
    runs = Counter(record.number for record in records if record.number >= 0)
    missing = [n for n in range(expected) if n not in runs]
    duplicated = [n for n, times in runs.items() if times > 1 and n < expected]
    stray = [n for n in runs if n >= expected]
    examples = tuple(sorted(missing)[:3] + sorted(duplicated)[:3] + sorted(stray)[:3])
    return Tally(expected, len(missing), len(duplicated), len(stray), examples)


class Ledger:
    """The harness's side: how far a phase has got, and what it recorded."""

    def __init__(self) -> None:
        self._redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)

    # redis-py types every sync command as "value or awaitable"; here it is the value.

    def count(self, key: str) -> int:
        return cast(int, self._redis.llen(key))

    def records(self, key: str) -> list[Record]:
        records = []
        for raw in cast(list[bytes], self._redis.lrange(key, 0, -1)):
            number, enqueued_at, started_at = raw.split()
            records.append(Record(int(number), float(enqueued_at), float(started_at)))
        return records

    def forget(self, key: str) -> None:
        self._redis.delete(key)

    def delete_matching(self, pattern: str) -> int:
        """Delete every key matching ``pattern`` (a library's leftovers); how many."""
        deleted = 0
        batch: list[bytes] = []
        for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += cast(int, self._redis.delete(*batch))
                batch.clear()
        if batch:
            deleted += cast(int, self._redis.delete(*batch))
        return deleted

    def server_info(self) -> dict[str, str]:
        info = cast(dict[str, object], self._redis.info("server"))
        persistence = {
            name: str(cast(dict[str, object], self._redis.config_get(name)).get(name))
            for name in ("appendonly", "appendfsync", "save")
        }
        return {"version": str(info["redis_version"]), **persistence}
