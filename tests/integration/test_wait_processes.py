"""Waiting in one process for a job that a ``servcore worker`` process runs,
on each durable store: the finish is heard through the store's notifications
(SQLite wake-up datagrams, PostgreSQL NOTIFY), not found by polling."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from servcore import JobStatus, Service
from servcore.store import store_from_url
from tests.conftest import fast_config
from tests.postgres import postgres_url, require_postgres
from tests.processes import servcore_worker

pytestmark = pytest.mark.slow

# Both sides would notice the job only this late without notifications: the
# worker's idle poll (its servcore.toml) and the waiter's fallback read.
SLOW_POLL = 60.0


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        require_postgres()
        return postgres_url()
    return f"sqlite:///{tmp_path / 'jobs.db'}"


async def test_a_wait_ends_when_another_process_finishes_the_job(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("servcore.job_client.FALLBACK_POLL", SLOW_POLL)
    (tmp_path / "servcore.toml").write_text(f"poll_interval = {SLOW_POLL}\n")
    waiter = Service(store_from_url(store_url), config=fast_config(poll_interval=SLOW_POLL))
    await waiter.start(workers=False)
    try:
        args = ["tests.process_tasks:service", "--store", store_url, "--node", "far-worker"]
        with servcore_worker(tmp_path, *args, "--log-level", "warning") as worker:
            started = time.monotonic()
            # Longer than the worker takes to start, however loaded the machine.
            job = await waiter.run("sleep", {"seconds": 0.3}, timeout=SLOW_POLL / 2)
            heard_at = datetime.now(UTC)
            assert job.status is JobStatus.DONE, worker.output()
            assert job.result == "woke up"
            assert job.locked_by == "far-worker"
            assert time.monotonic() - started < SLOW_POLL / 2
            assert job.finished_at is not None
            # Heard at once, not at the next second's fallback read (nor the 60 s one).
            lag = (heard_at - job.finished_at).total_seconds()
            assert lag < 0.5, f"the finish was heard {lag:.3f} s late"
            # A second job, now that both sides are warm.
            again = await waiter.run("sleep", {"seconds": 0.1}, timeout=SLOW_POLL / 2)
            assert again.finished_at is not None
            assert (datetime.now(UTC) - again.finished_at).total_seconds() < 0.5
    finally:
        await waiter.stop(grace=0)
