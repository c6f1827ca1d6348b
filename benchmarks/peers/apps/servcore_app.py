"""servcore's worker side: ``servcore worker peers.apps.servcore_app:service``.

The store comes from the worker's ``--store`` flag, as a user's would.
"""

from __future__ import annotations

import time

from peers.place import Place
from peers.records import AsyncRecorder
from servcore import Job, Service

service = Service()
recorder = AsyncRecorder(Place.from_env().record_key)


@service.task("noop")
async def noop(job: Job) -> None:
    started_at = time.time()
    await recorder.record(job.payload["n"], job.payload["t"], started_at)
