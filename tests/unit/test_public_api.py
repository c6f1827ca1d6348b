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
    "JobRequestError",
    "JobStatus",
    "MemoryStore",
    "NewJob",
    "Pipeline",
    "Retry",
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
