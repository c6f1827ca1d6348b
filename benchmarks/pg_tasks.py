"""The service ``benchmarks/postgres.py`` (and ``latency.py --mode processes``, on
SQLite) runs in ``servcore worker pg_tasks:service``.

- ``noop``: returns at once (multi-process throughput).
- ``stamp``: returns ``{"t": time.time()}`` taken on entry, so the benchmark
  can compare it with the wall time it noted just before enqueueing.
- ``append``: appends the job's id to the file named by ``SERVCORE_BENCH_LOG``
  with one ``O_APPEND`` write per execution (a killed process still leaves
  the line), then sleeps ``SERVCORE_BENCH_SLEEP_MS``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from servcore import Job, Service

service = Service()
_LOG_PATH = os.environ.get("SERVCORE_BENCH_LOG")
_LOG_FD = os.open(_LOG_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if _LOG_PATH else None
_SLEEP_S = float(os.environ.get("SERVCORE_BENCH_SLEEP_MS", "0")) / 1000


@service.task("noop")
async def noop(job: Job) -> None:
    return None


@service.task("stamp")
async def stamp(job: Job) -> dict[str, Any]:
    return {"t": time.time()}


@service.task("append")
async def append(job: Job) -> None:
    if _LOG_FD is not None:
        os.write(_LOG_FD, f"{job.id}\n".encode())
    if _SLEEP_S > 0:
        await asyncio.sleep(_SLEEP_S)
