"""Several services on one PostgreSQL, in one test process: wake-ups and reconnects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from servcore import Job, JobStatus, Service
from servcore.job_reads import JobQuery
from servcore.store import store_from_url
from servcore.testing import FakeClock
from tests.conftest import fast_config, finished, hanging, wait_for
from tests.postgres import DSN, postgres_url, require_postgres


@pytest.fixture
def shared_url() -> str:
    require_postgres()
    return postgres_url()


async def test_a_job_stored_by_one_process_starts_at_once_on_another(shared_url: str) -> None:
    submitter = Service(store_from_url(shared_url), config=fast_config(node="api"))
    worker = Service(
        store_from_url(shared_url), config=fast_config(node="worker", poll_interval=30)
    )
    await submitter.start(workers=False)
    await worker.start()
    try:
        await wait_for(lambda: not worker.problems(), message="the listener to connect")
        job = await submitter.enqueue("anything")
        done = await finished(worker, job.id)
        assert done.status is JobStatus.DONE
        assert done.locked_by == "worker"  # the node that ran it
        assert done.started_at is not None
        # Not the 30 s poll: the notification woke the worker.
        assert done.started_at - done.inserted_at < timedelta(seconds=1)
    finally:
        await worker.stop(grace=0)
        await submitter.stop(grace=0)


async def test_the_listener_reconnects_after_its_connection_is_killed(shared_url: str) -> None:
    submitter = Service(store_from_url(shared_url), config=fast_config(node="api"))
    worker = Service(
        store_from_url(shared_url), config=fast_config(node="worker", poll_interval=30)
    )
    await submitter.start(workers=False)
    await worker.start()
    admin = await asyncpg.connect(DSN)
    try:
        await wait_for(lambda: not worker.problems(), message="the listener to connect")
        channel = f"servcore_{shared_url.rsplit('schema=', 1)[1]}"[:63]
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE query LIKE $1)",
            f"%LISTEN%{channel}%",
        )
        assert killed >= 1
        await wait_for(lambda: "store" in worker.problems(), message="the loss to show in health")
        await wait_for(lambda: not worker.problems(), message="the listener to reconnect")
        job = await submitter.enqueue("after_the_reconnect")
        done = await finished(worker, job.id)
        assert done.started_at is not None
        assert done.started_at - done.inserted_at < timedelta(seconds=1)
    finally:
        await admin.close()
        await worker.stop(grace=0)
        await submitter.stop(grace=0)


async def test_two_workers_share_a_queue_without_running_a_job_twice(shared_url: str) -> None:
    runs: list[tuple[str, int]] = []
    services = [
        Service(store_from_url(shared_url), config=fast_config(node=f"w{n}")) for n in range(2)
    ]
    for service in services:
        name = service.config.node

        @service.task("count")
        async def count(job: Job, name: str = name) -> None:
            runs.append((name, job.id))
            await asyncio.sleep(0.001)

    for service in services:
        await service.start()
    try:
        new_jobs = [services[0].build_job({"task": "count"}) for _ in range(300)]
        jobs = await services[0].enqueue_many(new_jobs)
        await wait_for(lambda: len(runs) >= len(jobs), message="every job to run")
        counts = await services[0].count_jobs()
        await wait_for(lambda: services[0].count_jobs(), message="counts") if counts.done < len(
            jobs
        ) else None
        ids = [job_id for _, job_id in runs]
        assert sorted(ids) == sorted(job.id for job in jobs)  # each exactly once
        assert {name for name, _ in runs} == {"w0", "w1"}  # spread over both
    finally:
        for service in services:
            await service.stop(grace=0)


async def test_one_leader_at_a_time_and_a_new_one_when_it_goes(shared_url: str) -> None:
    services = [
        Service(store_from_url(shared_url), config=fast_config(node=f"n{n}")) for n in range(3)
    ]
    for service in services:
        await service.start()
    try:
        await wait_for(
            lambda: sum(s.node.leadership.is_leader() for s in services) == 1, message="a leader"
        )
        [leader] = [s for s in services if s.node.leadership.is_leader()]
        # Its session ends, and the lock with it (a kill -9 is in test_postgres_processes).
        await leader.stop(grace=0)
        others = [s for s in services if s is not leader]
        await wait_for(
            lambda: sum(s.node.leadership.is_leader() for s in others) == 1,
            within=10,
            message="another node to lead",
        )
        nodes = await others[0].nodes()
        assert [node.node for node in nodes] == sorted(s.config.node for s in others)
    finally:
        for service in services:
            await service.stop(grace=0)


async def test_cancelling_on_one_node_stops_the_run_on_another_at_once(shared_url: str) -> None:
    api = Service(store_from_url(shared_url), config=fast_config(node="api"))
    # A 60 s lease renews every 20 s: stopping sooner than that is the notification's doing.
    worker = Service(store_from_url(shared_url), config=fast_config(node="worker", lease=60))
    hang = hanging(worker)
    await api.start(workers=False)
    await worker.start()
    try:
        await wait_for(lambda: not worker.problems(), message="the listener to connect")
        job = await api.enqueue("hangs")
        await asyncio.wait_for(hang.started.wait(), 10)
        cancelled = await api.cancel_job(job.id)
        assert cancelled is not None
        assert cancelled.status is JobStatus.CANCELLED
        await asyncio.wait_for(hang.stopped.wait(), 5)
        await wait_for(lambda: not worker.runtimes["default"].in_flight, message="slot freed")
        final = await api.get_job(job.id)
        assert final is not None
        assert final.status is JobStatus.CANCELLED
    finally:
        await worker.stop(grace=0)
        await api.stop(grace=0)


async def test_two_nodes_insert_one_cron_job_per_tick_even_across_a_restart(
    shared_url: str,
) -> None:
    clock = FakeClock(datetime(2030, 1, 1, 11, 59, 30, tzinfo=UTC))

    def node(name: str) -> Service:
        service = Service(store_from_url(shared_url), config=fast_config(node=name), clock=clock)
        service.cron("* * * * *", "tick")
        return service

    async def run_ats() -> list[datetime]:
        page = await observer.list_jobs(JobQuery(status="done"), clock.now())
        return sorted(job.run_at for job in page.jobs)

    async def step_to(minute: int) -> None:
        clock.set(datetime(2030, 1, 1, 12, minute, 5, tzinfo=UTC))
        expected = [datetime(2030, 1, 1, 12, m, tzinfo=UTC) for m in range(minute + 1)]

        async def all_done() -> bool:
            return await run_ats() == expected

        await wait_for(all_done, message=f"one done job per tick up to 12:{minute:02}")

    observer = store_from_url(shared_url)
    await observer.open()
    first, second = node("a"), node("b")
    await first.start()
    await second.start()
    restarted: Service | None = None
    try:
        await wait_for(
            lambda: first.node.leadership.is_leader() or second.node.leadership.is_leader()
        )
        await wait_for(lambda: _cron_recorded(first), message="the entry to be seen")
        await step_to(0)
        await step_to(1)
        # The leader restarts: the other node takes over, then it comes back.
        leader, other = (first, second) if first.node.leadership.is_leader() else (second, first)
        await leader.stop(grace=0)
        await wait_for(other.node.leadership.is_leader, message="the other node to lead")
        await step_to(2)
        restarted = node(leader.config.node)
        await restarted.start()
        await step_to(3)
        await step_to(4)
        assert len(await run_ats()) == 5
    finally:
        for service in (first, second, restarted):
            if service is not None:
                await service.stop(grace=0)
        await observer.close()


async def _cron_recorded(service: Service) -> bool:
    return bool(await service.store.cron_ticks())
