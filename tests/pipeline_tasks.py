"""Handlers for the pipeline tests, importable by name from a configuration file."""

from __future__ import annotations

from typing import Any

from servcore import Job, TaskRegistry

tasks = TaskRegistry()


@tasks.task("send_email")
async def send_email(job: Job) -> dict[str, Any]:
    return {"sent_to": job.payload.get("to")}


async def transcode(job: Job) -> dict[str, Any]:
    """The media pipeline's worker: every job of its queue without a task of its own."""
    return {"transcoded": job.payload.get("file"), "queue": job.queue}


media_tasks = TaskRegistry()


@media_tasks.task("thumbnail")
async def thumbnail(job: Job) -> str:
    return "thumb"


not_a_registry = 42
