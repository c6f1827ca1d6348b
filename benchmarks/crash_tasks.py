"""The service ``benchmarks/crash_recovery.py`` runs: ``servcore serve crash_tasks:service``.

Its one task, ``append``, appends the job's id to the file named by
``SERVCORE_BENCH_LOG`` with one ``O_APPEND`` write per execution (so every
run of a job leaves a line, even when the process is killed right after),
optionally sleeps ``SERVCORE_BENCH_SLEEP_MS``, and returns.
"""

from __future__ import annotations

import asyncio
import os

from servcore import Job, Service

service = Service()
_LOG_FD = os.open(
    os.environ.get("SERVCORE_BENCH_LOG", "crash-bench.log"),
    os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    0o644,
)
_SLEEP_S = float(os.environ.get("SERVCORE_BENCH_SLEEP_MS", "0")) / 1000


@service.task("append")
async def append(job: Job) -> None:
    os.write(_LOG_FD, f"{job.id}\n".encode())
    if _SLEEP_S > 0:
        await asyncio.sleep(_SLEEP_S)
