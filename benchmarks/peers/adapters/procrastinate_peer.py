"""procrastinate on PostgreSQL: ``task.defer_async`` in an opened app;
``procrastinate worker --concurrency`` runs async tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

from peers.adapters.base import BIN, Backend, Enqueue, Peer, run_command
from peers.place import Place
from peers.stores import create_schema, drop_schema

APP = "peers.apps.procrastinate_app.app"


class ProcrastinatePostgres(Peer):
    name = "procrastinate"
    distribution = "procrastinate"
    backend: ClassVar[Backend] = "postgresql"
    durability = "INSERT committed (autocommit, through procrastinate_defer_jobs_v1)"
    settings = (
        "procrastinate worker --concurrency 8; LISTEN/NOTIFY, default polling 5 s; "
        "psycopg 3 with its C build (psycopg[binary])"
    )

    def prepare(self, place: Place) -> None:
        create_schema(place.pg_schema)
        run_command(
            [str(BIN / "procrastinate"), "--app", APP, "schema", "--apply"], place, self.env(place)
        )

    def discard(self, place: Place) -> None:
        drop_schema(place.pg_schema)

    def worker_command(self, place: Place, concurrency: int) -> list[str]:
        return [
            str(BIN / "procrastinate"),
            "--app",
            APP,
            "--log-level",
            "warning",
            "worker",
            "--concurrency",
            str(concurrency),
        ]

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        from peers.apps.procrastinate_app import app, noop  # reads the place at import

        async with app.open_async():

            async def enqueue(number: int, enqueued_at: float) -> None:
                await noop.defer_async(number=number, enqueued_at=enqueued_at)

            yield enqueue
