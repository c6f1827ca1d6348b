"""Leader election with a PostgreSQL session advisory lock.

Every node tries ``pg_try_advisory_lock`` on a connection of its own, once a
second. One gets it and leads for as long as that session lives; when the
leader dies — ``kill -9`` included — PostgreSQL ends its session and frees
the lock, and the next node to try takes over within about a second. A
leader that loses its connection stops leading at once (it cannot know
whether someone else has the lock now) and tries again after reconnecting.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger("servcore.leadership")

# Its own advisory-lock namespace (see store.postgres.schema for the others).
LOCK_LEADER = 7302

_ERRORS = (
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class PostgresLeadership:
    def __init__(self, dsn: str, key: str, node: str, *, interval: float = 1.0) -> None:
        self._dsn = dsn
        self._key = key
        self._node = node
        self._interval = interval
        self._leader = False

    def is_leader(self) -> bool:
        return self._leader

    async def run(self) -> None:
        while True:
            try:
                await self._hold()
            except _ERRORS as error:
                log.debug("Leadership connection failed: %s", error)
            await asyncio.sleep(self._interval)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            while True:
                if not self._leader:
                    got = await conn.fetchval(
                        "SELECT pg_try_advisory_lock($1, hashtext($2))",
                        LOCK_LEADER,
                        self._key,
                        timeout=5,
                    )
                    if got:
                        self._leader = True
                        log.info("Node %s is now the leader", self._node)
                else:
                    await conn.fetchval("SELECT 1", timeout=5)  # still holding it?
                await asyncio.sleep(self._interval)
        except asyncio.CancelledError:
            if self._leader:
                log.info("Node %s stepped down as leader", self._node)
            raise
        except BaseException:
            if self._leader:
                log.warning("Node %s is no longer the leader", self._node)
            raise
        finally:
            self._leader = False
            if not conn.is_closed():
                conn.terminate()
