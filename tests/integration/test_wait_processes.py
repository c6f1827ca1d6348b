"""Waiting in one process for a job that a ``servcore worker`` process runs,
on each durable store: the finish is heard through the store's notifications
(SQLite wake-up datagrams, PostgreSQL NOTIFY), not found by polling."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from servcore import JobStatus, Service
from servcore.store import store_from_url
from servcore.timestamps import parse_timestamp
from tests.conftest import fast_config
from tests.postgres import postgres_url, require_postgres
from tests.processes import servcore_serve, servcore_worker

pytestmark = pytest.mark.slow

# Both sides would notice the job only this late without notifications: the
# worker's idle poll (its servcore.toml) and the waiter's fallback read.
SLOW_POLL = 60.0


def slow_polls(directory: Path) -> None:
    """The servcore.toml of processes started in ``directory``: poll only every SLOW_POLL s."""
    (directory / "servcore.toml").write_text(
        f"poll_interval = {SLOW_POLL}\nwait_poll_interval = {SLOW_POLL}\n"
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        require_postgres()
        return postgres_url()
    return f"sqlite:///{tmp_path / 'jobs.db'}"


async def test_a_wait_ends_when_another_process_finishes_the_job(
    store_url: str, tmp_path: Path
) -> None:
    slow_polls(tmp_path)
    config = fast_config(poll_interval=SLOW_POLL, wait_poll_interval=SLOW_POLL)
    waiter = Service(store_from_url(store_url), config=config)
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


async def test_an_http_wait_ends_when_another_process_finishes_the_job(
    store_url: str, tmp_path: Path
) -> None:
    slow_polls(tmp_path)
    app = ["tests.process_tasks:service", "--store", store_url, "--log-level", "warning"]
    with (
        servcore_serve(tmp_path, *app, "--no-workers", "--node", "api", name="api") as api,
        servcore_worker(tmp_path, *app, "--node", "far-worker") as worker,
    ):
        api.wait_ready()
        async with httpx.AsyncClient(base_url=api.url, timeout=SLOW_POLL) as client:
            for seconds in (0.3, 0.1):  # the second with both sides warm
                posted = await client.post(
                    "/jobs", json={"payload": {"task": "sleep", "seconds": seconds}}
                )
                job_id = posted.json()["job_id"]
                started = time.monotonic()
                response = await client.get(f"/jobs/{job_id}", params={"wait": SLOW_POLL / 2})
                heard_at = datetime.now(UTC)
                assert time.monotonic() - started < SLOW_POLL / 2, worker.output()
                body = response.json()
                assert (body["status"], body["result"]) == ("done", "woke up"), worker.output()
                assert body["locked_by"] == "far-worker"
                lag = (heard_at - parse_timestamp(body["finished_at"])).total_seconds()
                assert lag < 0.5, f"the finish was answered {lag:.3f} s late"
