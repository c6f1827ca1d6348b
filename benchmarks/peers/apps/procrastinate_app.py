"""procrastinate's worker side: ``procrastinate --app peers.apps.procrastinate_app.app worker``.

Its tables live in the phase's schema: every connection of the pool is
opened with that schema as its ``search_path``.
"""

from __future__ import annotations

import time

import procrastinate

from peers.place import PG_DATABASE, PG_HOST, PG_PORT, PG_USER, Place
from peers.records import AsyncRecorder

place = Place.from_env()
conninfo = (
    f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_DATABASE} "
    f"options='-c search_path={place.pg_schema}'"
)
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
recorder = AsyncRecorder(place.record_key)


@app.task(name="noop")
async def noop(number: int, enqueued_at: float) -> None:
    started_at = time.time()
    await recorder.record(number, enqueued_at, started_at)
