"""huey on SQLite (``SqliteHuey``) and on Redis (``RedisHuey``): the task
called like a function enqueues it; ``huey_consumer`` runs it in worker
threads (huey runs no ``async def`` tasks)."""

from __future__ import annotations

import importlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

from peers.adapters.base import BIN, Backend, Enqueue, Peer
from peers.place import Place
from peers.records import Ledger


class _Huey(Peer):
    name = "huey"
    distribution = "huey"
    # SIGTERM stops huey at once; SIGINT is its graceful stop.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    app: ClassVar[str]  # the module that holds `huey` and `noop`

    def prepare(self, place: Place) -> None:
        pass  # huey makes its tables (or keys) on first use

    def worker_command(self, place: Place, concurrency: int) -> list[str]:
        return [
            str(BIN / "huey_consumer"),
            f"{self.app}.huey",
            "--worker-type",
            "thread",
            "--workers",
            str(concurrency),
            "--quiet",
        ]

    @asynccontextmanager
    async def client(self, place: Place) -> AsyncIterator[Enqueue]:
        # Imported here: the app reads the phase's place at import, which only
        # the client and worker processes have.
        app = importlib.import_module(self.app)

        async def enqueue(number: int, enqueued_at: float) -> None:
            app.noop(number, enqueued_at)  # a blocking call: this process does nothing else

        yield enqueue


class HueySqlite(_Huey):
    backend: ClassVar[Backend] = "sqlite"
    app = "peers.apps.huey_app"
    durability = (
        "each enqueue is its own transaction; fsync=True (PRAGMA synchronous=FULL), WAL; "
        "a worker deletes the job's row when it takes it (gone if the worker dies)"
    )
    settings = "huey_consumer -k thread -w 8 -q; workers poll (0.1 s, x1.15 while idle, max 10 s)"

    def discard(self, place: Place) -> None:
        pass  # the phase's directory goes with the harness's temp dir


class HueyRedis(_Huey):
    backend: ClassVar[Backend] = "redis"
    app = "peers.apps.huey_redis_app"
    durability = (
        "LPUSH to Redis (in memory: durable only as far as the Redis server persists); "
        "a worker pops the job when it takes it (gone if the worker dies)"
    )
    settings = "huey_consumer -k thread -w 8 -q; blocking pop (BRPOP, 1 s timeout)"

    def discard(self, place: Place) -> None:
        Ledger().delete_matching(f"huey.*.{place.run_id}*")
