"""Task handlers for the tests that run ``servcore serve`` as a real process.

``servcore serve tests.process_tasks:service`` loads this module. Each
execution of ``record`` appends "job-id node" to ``$RECORD_FILE`` (one write
with O_APPEND, so lines from concurrent runs never interleave).
"""

from __future__ import annotations

import asyncio
import os

from servcore import Job, Service
from servcore.tasks import default_handler

service = Service()
# Tasks not named here complete as in the demo (the tests post any name).
service.set_default_handler(default_handler)


@service.task("record")
async def record(job: Job) -> dict[str, int]:
    fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job.id} {job.locked_by}\n".encode())
    finally:
        os.close(fd)
    await asyncio.sleep(job.payload.get("sleep", 0))
    return {"recorded": job.id}


@service.task("sleep")
async def sleep(job: Job) -> str:
    await asyncio.sleep(job.payload["seconds"])
    return "woke up"


@service.task("explode")
async def explode(job: Job) -> None:
    raise RuntimeError("kaboom")


@service.task("flaky")
async def flaky(job: Job) -> str:
    if job.attempt < 2:
        raise RuntimeError("the first attempt always fails\nbecause the cache is cold")
    return "warm now"


@service.task("tick")
async def tick(job: Job) -> None:
    """What the cron entries of the cluster tests insert."""
