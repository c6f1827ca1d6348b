"""servcore, as a user runs it: a client process with ``Service(url)`` and
``await service.enqueue(...)``, workers as ``servcore worker MODULE:SERVICE``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

from peers.adapters.base import BENCHMARKS_DIR, BIN, Backend, Enqueue, Peer, run_command
from peers.place import PG_URL, Place
from peers.stores import drop_schema
from servcore import Service


class _Servcore(Peer):
    distribution = "servcore"

    def store_url(self, place: Place) -> str:
        raise NotImplementedError

    def prepare(self, place: Place) -> None:
        # Opening the store creates and migrates it; done once here so the
        # client and the workers do not race to do it.
        run_command([str(BIN / "servcore"), "migrate", "--store", self.store_url(place)], place)

    def worker_command(self, place: Place, concurrency: int) -> list[str]:
        return [
            str(BIN / "servcore"),
            "--app-dir",
            str(BENCHMARKS_DIR),
            "worker",
            "peers.apps.servcore_app:service",
            "--store",
            self.store_url(place),
            "--concurrency",
            str(concurrency),
            "--log-level",
            "warning",
        ]

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        service = Service(self.store_url(place))
        await service.start(workers=False)

        async def enqueue(number: int, enqueued_at: float) -> None:
            await service.enqueue("noop", {"n": number, "t": enqueued_at})

        try:
            yield enqueue
        finally:
            await service.stop()


class ServcoreSqlite(_Servcore):
    name = "servcore"
    backend: ClassVar[Backend] = "sqlite"
    durability = "commits each job in its own transaction, synchronous=FULL (the default)"
    settings = "worker --concurrency 8; woken at once by the wake-up sockets (poll 1 s behind them)"

    def store_url(self, place: Place) -> str:
        return f"sqlite:///{place.sqlite_path}"

    def discard(self, place: Place) -> None:
        pass  # the phase's directory goes with the harness's temp dir


class ServcorePostgres(_Servcore):
    name = "servcore"
    backend: ClassVar[Backend] = "postgresql"
    durability = "INSERT committed (synchronous_commit on), NOTIFY in the same transaction"
    settings = "worker --concurrency 8; pool of 10 connections (the default)"

    def store_url(self, place: Place) -> str:
        return f"{PG_URL}?schema={place.pg_schema}"

    def discard(self, place: Place) -> None:
        drop_schema(place.pg_schema)


class _SyncClient:
    """``service.enqueue_sync(...)``: what a Django or Flask app calls (a
    blocking call, as huey's: this process does nothing else)."""

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        service = Service(self.store_url(place))  # type: ignore[attr-defined]

        async def enqueue(number: int, enqueued_at: float) -> None:
            service.enqueue_sync("noop", {"n": number, "t": enqueued_at})

        try:
            yield enqueue
        finally:
            if service.loop is not None:
                service._loop_thread.run(service.stop(), service.loop)


class ServcoreSyncSqlite(_SyncClient, ServcoreSqlite):
    name = "servcore_sync"


class ServcoreSyncPostgres(_SyncClient, ServcorePostgres):
    name = "servcore_sync"
