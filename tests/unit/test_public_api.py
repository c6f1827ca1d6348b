"""The public API is what ``servcore.__all__`` says; changing it is a decision."""

from __future__ import annotations

import servcore

EXPECTED = {
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
}


def test_exported_members_are_exactly_the_public_api() -> None:
    assert set(servcore.__all__) == EXPECTED
    for name in servcore.__all__:
        assert getattr(servcore, name) is not None


def test_every_public_error_derives_from_servcore_error() -> None:
    from servcore.cron import CronError
    from servcore.job_requests import JobStateError
    from servcore.process_main import ServeError
    from servcore.runtime.processes import ProcessTaskError
    from servcore.timestamps import TimestampError

    errors = [
        servcore.ConfigError,
        servcore.JobRequestError,
        servcore.StoreError,
        servcore.UniqueConflict,
        CronError,
        JobStateError,
        ProcessTaskError,
        ServeError,
        TimestampError,
    ]
    for error in errors:
        assert issubclass(error, servcore.ServcoreError), error
    # Bad input stays a ValueError for code that caught that before.
    for error in (servcore.ConfigError, servcore.JobRequestError, CronError, TimestampError):
        assert issubclass(error, ValueError), error
    # A handler's signals are not errors.
    for signal in (servcore.Retry, servcore.Discard, servcore.Cancel):
        assert not issubclass(signal, servcore.ServcoreError), signal
