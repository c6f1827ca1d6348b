"""PostgreSQL: a statement that waits too long gives up, says whom it waited
for, shows on /health, and the outcome it carried is written once the way is
clear — the job held all along, never rescued, run once (issue 10)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from servcore import Job, JobStatus, Service
from servcore.store.postgres.waits import WaitLimits
from tests.conftest import fast_config, finished, wait_for
from tests.postgres import DSN, postgres_url, require_postgres


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    require_postgres()
    svc = Service(postgres_url(), config=fast_config(lease=2.0, rescue_interval=0.05))
    try:
        yield svc
    finally:
        await svc.stop(grace=0)


def test_every_wait_is_bounded_by_the_lease() -> None:
    limits = WaitLimits.for_lease(30.0)
    assert (limits.statement, limits.lock, limits.idle_in_transaction) == (15.0, 7.5, 30.0)
    settings = limits.server_settings()
    assert settings["statement_timeout"] == "15000"
    assert settings["lock_timeout"] == "7500"
    assert settings["idle_in_transaction_session_timeout"] == "30000"
    assert settings["plan_cache_mode"] == "force_custom_plan"


async def test_the_store_sessions_run_with_the_limits(service: Service) -> None:
    await service.start(workers=False)
    pool = service.store.inner._ready_pool()  # type: ignore[attr-defined]
    async with pool.acquire() as conn:
        shown = [await conn.fetchval(f"SHOW {name}") for name in _LIMITS]
    assert shown == ["2s", "1s", "5s", "force_custom_plan"]


_LIMITS = (
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "plan_cache_mode",
)


async def test_a_blocked_completion_gives_up_names_the_blocker_and_lands_later(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    @service.task("gated")
    async def gated(job: Job) -> str:
        await release.wait()
        return "done"

    await service.start()
    job = await service.enqueue("gated")
    runtime = service.runtimes["default"]
    await wait_for(lambda: bool(runtime.in_flight), message="job running")
    blocker = await asyncpg.connect(DSN)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        schema = service.store.inner.schema  # type: ignore[attr-defined]
        await blocker.execute(
            f'SELECT id FROM "{schema}".servcore_jobs WHERE id = $1 FOR UPDATE', job.id
        )
        with caplog.at_level(logging.WARNING, logger="servcore.store"):
            release.set()
            await wait_for(
                lambda: "gave up" in service.problems().get("completer default", ""),
                message="the completer to report the timeout on /health",
            )
        line = next(r.getMessage() for r in caplog.records if "gave up" in r.getMessage())
        assert f"pid {blocker.get_server_pid()} (idle in transaction" in line
        assert "FOR UPDATE" in line
        # Its lease ran out meanwhile (the renewal skips a locked row): still not rescued.
        await wait_for(lambda: _lease_ran_out(service, job.id), message="lease to run out")
        assert service.node.rescuer.rescued == 0
        await transaction.rollback()
    finally:
        await blocker.close()
    done = await finished(service, job.id)
    assert (done.status, done.result, done.attempt, done.rescued) == (JobStatus.DONE, "done", 1, 0)
    await wait_for(lambda: not service.problems(), message="health to recover")


async def _lease_ran_out(service: Service, job_id: int) -> bool:
    job = await service.get_job(job_id)
    assert job is not None
    return job.locked_until is not None and job.locked_until < service.clock.now()
