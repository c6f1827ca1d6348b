"""huey's worker side: ``huey_consumer peers.apps.huey_app.huey -k thread -w 8``.

``fsync=True`` makes huey set ``PRAGMA synchronous=FULL`` on its
connections; WAL is huey's default journal mode. huey runs plain functions
only (no ``async def`` tasks), so its concurrency is threads.
"""

from __future__ import annotations

import time

from huey import SqliteHuey

from peers.place import Place
from peers.records import SyncRecorder

place = Place.from_env()
huey = SqliteHuey("peers", filename=str(place.sqlite_path), fsync=True)
recorder = SyncRecorder(place.record_key)


@huey.task()  # type: ignore[untyped-decorator]  # huey has no type hints
def noop(number: int, enqueued_at: float) -> None:
    started_at = time.time()
    recorder.record(number, enqueued_at, started_at)
