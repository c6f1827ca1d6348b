"""pgqueuer on PostgreSQL: ``Queries.enqueue`` on an asyncpg connection;
``pgq run`` with a factory for the worker."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

from peers.adapters.base import BIN, Backend, Enqueue, Peer, run_command
from peers.place import PG_URL, Place
from peers.stores import drop_schema

# pgqueuer refuses a per-worker cap below twice the batch size.
BATCH_SIZE = 4


class PgqueuerPostgres(Peer):
    name = "pgqueuer"
    distribution = "pgqueuer"
    backend: ClassVar[Backend] = "postgresql"
    durability = "INSERT committed (autocommit; tables installed 'durable', the default)"
    settings = (
        f"pgqueuer.run(max_concurrent_tasks=8, batch_size={BATCH_SIZE}) (the cap must be "
        ">= 2 x batch; default batch 10), as `pgq run` (broken in 1.6.0) would; LISTEN/NOTIFY"
    )

    def env(self, place: Place) -> dict[str, str]:
        return {"PGQUEUER_SCHEMA": place.pg_schema, "PGDSN": PG_URL}

    def prepare(self, place: Place) -> None:
        run_command([str(BIN / "pgq"), "install"], place, self.env(place))

    def discard(self, place: Place) -> None:
        drop_schema(place.pg_schema)

    def worker_command(self, place: Place, concurrency: int) -> list[str]:
        # Not `pgq run`: it crashes in pgqueuer 1.6.0 (see peers.apps.pgqueuer_app).
        return [
            sys.executable,
            "-m",
            "peers.apps.pgqueuer_app",
            "--concurrency",
            str(concurrency),
            "--batch-size",
            str(min(BATCH_SIZE, concurrency // 2)),
        ]

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        from peers.apps.pgqueuer_app import payload  # reads the place at import

        connection = await asyncpg.connect(PG_URL)
        queries = Queries(AsyncpgDriver(connection))

        async def enqueue(number: int, enqueued_at: float) -> None:
            await queries.enqueue("noop", payload(number, enqueued_at))

        try:
            yield enqueue
        finally:
            await connection.close()
