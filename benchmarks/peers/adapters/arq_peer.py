"""arq on Redis: ``ArqRedis.enqueue_job`` from a pool; the ``arq`` CLI runs
async jobs, ``max_jobs`` at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from peers.adapters.base import BIN, Backend, Enqueue, Peer
from peers.place import REDIS_HOST, REDIS_PORT, Place
from peers.records import Ledger


class ArqRedis(Peer):
    name = "arq"
    distribution = "arq"
    backend: ClassVar[Backend] = "redis"
    durability = (
        "the job is in Redis memory when enqueue_job returns; durable only as far as the "
        "Redis server persists (see the Redis line: here appendonly no, no snapshots)"
    )
    settings = "max_jobs=8; default poll_delay 0.5 s (arq polls its queue, no blocking pop)"

    def prepare(self, place: Place) -> None:
        pass  # keys appear on first use

    def discard(self, place: Place) -> None:
        ledger = Ledger()
        ledger.forget(place.redis_queue)
        # Per-job keys carry no queue name; nothing else on this Redis uses arq.
        for prefix in ("arq:job:", "arq:result:", "arq:in-progress:", "arq:retry:"):
            ledger.delete_matching(prefix + "*")

    def worker_command(self, place: Place, concurrency: int) -> list[str]:
        # max_jobs comes from PEERS_CONCURRENCY (arq's CLI has no flag for it).
        return [
            str(BIN / "arq"),
            "peers.apps.arq_app.WorkerSettings",
            "--custom-log-dict",
            "peers.apps.arq_app.LOG_CONFIG",
        ]

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        pool = await create_pool(
            RedisSettings(host=REDIS_HOST, port=REDIS_PORT), default_queue_name=place.redis_queue
        )

        async def enqueue(number: int, enqueued_at: float) -> None:
            await pool.enqueue_job("noop", number, enqueued_at)

        try:
            yield enqueue
        finally:
            await pool.aclose()
