"""pgqueuer's worker side: ``python -m peers.apps.pgqueuer_app --concurrency 8``.

``pgq run peers.apps.pgqueuer_app:create_pgqueuer`` would be the usual
command, but in pgqueuer 1.6.0 (with typer 0.29) it dies before starting:
its ``--log-level`` option hands ``setup_fancy_logger`` a str where a
``LogLevel`` is expected (``'str' object has no attribute 'name'``), with
or without the flag. So the worker is started as ``pgq run`` does it,
through ``pgqueuer.run`` (documented as "Run a worker from *factory*, as
``pgq run`` does, without the CLI"), on uvloop as its CLI would.

The schema comes from ``PGQUEUER_SCHEMA`` (set by the adapter), which
pgqueuer's settings read.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pgqueuer
import uvloop
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from peers.place import PG_URL, Place
from peers.records import AsyncRecorder

recorder = AsyncRecorder(Place.from_env().record_key)


def payload(number: int, enqueued_at: float) -> bytes:
    return json.dumps({"n": number, "t": enqueued_at}).encode()


@asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[PgQueuer]:
    # 1.6.0 wants an async context manager here; the README's quick start (an
    # ``async def`` returning the PgQueuer) is refused with a TypeError.
    connection = await asyncpg.connect(PG_URL)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        started_at = time.time()
        body = json.loads(job.payload or b"{}")
        await recorder.record(body["n"], body["t"], started_at)

    try:
        yield pgq
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a pgqueuer worker, as `pgq run` starts one")
    parser.add_argument("--concurrency", type=int, required=True, help="--max-concurrent-tasks")
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(
        pgqueuer.run(
            create_pgqueuer,
            batch_size=args.batch_size,
            max_concurrent_tasks=args.concurrency,
        )
    )
