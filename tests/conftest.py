"""Shared fixtures: stores of every backend, services, and waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from servcore import Job, Service, ServiceConfig
from servcore.store import MemoryStore, SqliteStore, Store, store_from_url
from tests.postgres import POSTGRES, postgres_url, require_postgres

BACKENDS = ["memory", "sqlite", "postgres"]


def make_store(backend: str, tmp_path: Path) -> Store:
    """A new, empty store of ``backend`` (on PostgreSQL: a schema of its own)."""
    if backend == "memory":
        return MemoryStore()
    if backend == "sqlite":
        path = tmp_path / "jobs.db"
        return SqliteStore(f"sqlite:///{path}", str(path))
    if backend == "postgres":
        return store_from_url(postgres_url())
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_schemas() -> Iterator[None]:
    yield
    POSTGRES.drop_schemas()


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = make_store(backend, tmp_path)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def fast_config(**overrides: object) -> ServiceConfig:
    """Settings for tests: small pool, short timers, a fixed node name."""
    values: dict[str, object] = {
        "node": "test-node",
        "concurrency": 4,
        "poll_interval": 0.2,
        "shutdown_grace": 2.0,
    }
    values.update(overrides)
    return ServiceConfig(**values)  # type: ignore[arg-type]


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> None:
    """Wait until ``condition()`` is true, failing the test after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {message}")
        await asyncio.sleep(interval)


async def finished(service: Service, job_id: int) -> Job:
    """The job once it has finished (done, failed or cancelled), within the deadline."""

    async def is_finished() -> bool:
        job = await service.get_job(job_id)
        return job is not None and job.status.finished

    await wait_for(is_finished, message=f"job {job_id} to finish")
    job = await service.get_job(job_id)
    assert job is not None
    return job


class Hang:
    """An async handler that runs until its run is cancelled, and says when it
    started and when it stopped (tests of cancelling and stopping runs)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.set()


def hanging(service: Service, task: str = "hangs") -> Hang:
    """Register a :class:`Hang` handler for ``task`` on ``service``."""
    hang = Hang()
    service.registry.register(task, hang)
    return hang
