"""servcore: durable background jobs with an HTTP JSON API.

from servcore import Service

service = Service("sqlite:///jobs.db")

@service.task("send_email", max_attempts=5)
async def send_email(job):
    ...
    return {"sent": True}
"""

from servcore.clock import Clock, SystemClock
from servcore.config import ServiceConfig
from servcore.errors import ConfigError, JobNotFound, ServcoreError
from servcore.http.app import create_app, job_routes
from servcore.job_requests import JobRequestError, UniqueConflict
from servcore.jobs import Job, JobError, JobStatus, NewJob
from servcore.pipelines import Pipeline
from servcore.retry import Backoff
from servcore.service import Service
from servcore.store import MemoryStore, SqliteStore, Store, StoreError, store_from_url
from servcore.tasks import (
    Cancel,
    Discard,
    Retry,
    TaskRegistry,
    cancel_requested,
    default_handler,
    raise_if_cancelled,
)

__all__ = [
    "Backoff",
    "Cancel",
    "Clock",
    "ConfigError",
    "Discard",
    "Job",
    "JobError",
    "JobNotFound",
    "JobRequestError",
    "JobStatus",
    "MemoryStore",
    "NewJob",
    "Pipeline",
    "Retry",
    "ServcoreError",
    "Service",
    "ServiceConfig",
    "SqliteStore",
    "Store",
    "StoreError",
    "SystemClock",
    "TaskRegistry",
    "UniqueConflict",
    "cancel_requested",
    "create_app",
    "default_handler",
    "job_routes",
    "raise_if_cancelled",
    "store_from_url",
]
