"""huey on Redis: ``huey_consumer peers.apps.huey_redis_app.huey -k thread -w 8``.

``RedisHuey`` with its defaults: workers wait on a blocking pop (BRPOP,
1 s read timeout), so they wake as soon as a job is pushed. One queue per
phase (named after it). Threads, as on SQLite: huey runs no ``async def``.
"""

from __future__ import annotations

import time

from huey import RedisHuey

from peers.place import REDIS_HOST, REDIS_PORT, Place
from peers.records import SyncRecorder

place = Place.from_env()
huey = RedisHuey(place.run_id, host=REDIS_HOST, port=REDIS_PORT)
recorder = SyncRecorder(place.record_key)


@huey.task()  # type: ignore[untyped-decorator]  # huey has no type hints
def noop(number: int, enqueued_at: float) -> None:
    started_at = time.time()
    recorder.record(number, enqueued_at, started_at)
