"""arq's worker side: ``arq peers.apps.arq_app.WorkerSettings``.

One queue per phase (a sorted set named after it); arq's defaults otherwise,
but for ``max_jobs`` (the concurrency) and logging at WARNING (by default
arq logs every job's start and end at INFO).
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings

from peers.place import CONCURRENCY_ENV, REDIS_HOST, REDIS_PORT, Place
from peers.records import AsyncRecorder

place = Place.from_env()
recorder = AsyncRecorder(place.record_key)
redis_settings = RedisSettings(host=REDIS_HOST, port=REDIS_PORT)


async def noop(ctx: dict[str, Any], number: int, enqueued_at: float) -> None:
    started_at = time.time()
    await recorder.record(number, enqueued_at, started_at)


class WorkerSettings:
    functions: ClassVar = [noop]
    queue_name = place.redis_queue
    redis_settings = redis_settings
    max_jobs = int(os.environ.get(CONCURRENCY_ENV, "10"))  # arq's default is 10


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
