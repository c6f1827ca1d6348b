"""LISTEN/NOTIFY: every process hears which queues got new jobs.

The store sends ``pg_notify(channel, queue)`` in the transaction that
inserts jobs, so the notification arrives when, and only if, they commit;
cancelling a running job sends ``cancel:<id>:<lease token>``, and every
write that finishes jobs ``finished:<ids>`` (see ``notifier.base``).
The listener holds one connection of its own. When that connection drops
(PostgreSQL restarted, the connection terminated) it says so — the service
reports DEGRADED — reconnects with backoff, and wakes every queue (and
every waiter) once it is back, since notifications sent meanwhile were lost;
so it does when it first listens.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from servcore.notifier.base import OnCancel, OnFinish, OnQueue, deliver

log = logging.getLogger("servcore.notifier")

# Every servcore connection asks the server to notice within seconds, not the
# kernel's two hours, that its client is gone (host down, network cut): the
# session then ends, and the row locks of a transaction it had open go with
# it. TCP keepalives probe an idle connection; tcp_user_timeout bounds how
# long data sent may go unacknowledged. (A frozen process's kernel still
# answers both: leadership and job leases do not rest on the session.)
DEAD_PEER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # milliseconds
}

_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_ERRORS = (
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class PostgresNotifier:
    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._problem: str | None = None

    def problem(self) -> str | None:
        return self._problem

    async def run(
        self, on_queue: OnQueue, on_cancel: OnCancel, on_finish: OnFinish | None = None
    ) -> None:
        def heard(payload: str) -> None:
            deliver(payload, on_queue, on_cancel, on_finish)

        failures = 0
        while True:
            try:
                await self._listen(heard, on_queue)
            except _ERRORS as error:
                self._problem = f"PostgreSQL unreachable: {error}"
                delay = _DELAYS[min(failures, len(_DELAYS) - 1)]
                log.warning("Listener lost PostgreSQL (%s); reconnecting in %.2f s", error, delay)
                failures += 1
                await asyncio.sleep(delay)
            else:
                failures = 0

    async def _listen(self, heard: OnQueue, on_queue: OnQueue) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10, server_settings=DEAD_PEER_SETTINGS)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(self._channel, lambda _c, _p, _ch, payload: heard(payload))
            if self._problem is not None:
                log.info("Listener reconnected to PostgreSQL")
            # Every queue, every waiter: what was sent before we listened is lost.
            on_queue("")
            self._problem = None
            while not lost.is_set():
                # A cheap query now and then notices a half-open connection.
                try:
                    async with asyncio.timeout(5):
                        await lost.wait()
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=5)
            raise ConnectionError("listener connection closed")
        finally:
            if not conn.is_closed():
                conn.terminate()
