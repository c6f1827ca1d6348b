"""The cron scheduler on every store, with a fake clock: one job per tick."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from servcore import Job, JobRequestError, Service
from servcore.job_reads import JobQuery
from servcore.maintenance.cron import CronScheduler
from servcore.store.base import Store
from servcore.supervisor import Health
from servcore.testing import FakeClock
from tests.conftest import fast_config, make_store, wait_for

START = datetime(2030, 1, 1, 11, 59, 30, tzinfo=UTC)


def scheduler_for(service: Service, store: Store) -> CronScheduler:
    return CronScheduler(
        store, list(service.cron_entries.values()), clock=service.clock, health=Health()
    )


async def jobs_of(store: Store, now: datetime) -> list[tuple[str, datetime]]:
    page = await store.list_jobs(JobQuery(), now)
    return sorted((job.task, job.run_at) for job in page.jobs)


async def test_one_job_per_tick_and_none_for_a_tick_before_the_entry_existed(
    store: Store,
) -> None:
    clock = FakeClock(START)
    service = Service(store, config=fast_config(), clock=clock)
    service.cron("* * * * *", "every_minute")
    service.cron("0 12 * * *", "noon", payload={"report": "daily"}, queue="reports")
    scheduler = scheduler_for(service, store)

    assert await scheduler.run_once(clock.now()) == []  # 11:59 passed before the entry existed
    clock.set(datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC))
    inserted = await scheduler.run_once(clock.now())
    assert sorted(job.task for job in inserted) == ["every_minute", "noon"]
    noon = next(job for job in inserted if job.task == "noon")
    assert (noon.queue, noon.payload) == ("reports", {"task": "noon", "report": "daily"})
    assert noon.run_at == clock.now()
    clock.advance(30)
    assert await scheduler.run_once(clock.now()) == []  # same ticks: nothing more
    clock.advance(30)
    assert [job.task for job in await scheduler.run_once(clock.now())] == ["every_minute"]


async def test_ticks_missed_while_down_are_replayed_once(store: Store) -> None:
    clock = FakeClock(START)
    service = Service(store, config=fast_config(), clock=clock)
    service.cron("*/5 * * * *", "five")
    await scheduler_for(service, store).run_once(clock.now())  # first seen at 11:59:30
    clock.set(datetime(2030, 1, 1, 15, 2, tzinfo=UTC))  # down for 3 hours: 36 ticks missed
    restarted = scheduler_for(service, store)  # a fresh process
    (job,) = await restarted.run_once(clock.now())
    assert job.run_at == datetime(2030, 1, 1, 15, 0, tzinfo=UTC)  # the latest tick only
    assert await restarted.run_once(clock.now()) == []
    assert len(await jobs_of(store, clock.now())) == 1


async def test_ticks_follow_the_entry_time_zone(store: Store) -> None:
    clock = FakeClock(datetime(2030, 7, 1, 6, 0, tzinfo=UTC))  # 08:00 in Berlin (CEST)
    service = Service(store, config=fast_config(), clock=clock)
    entry = service.cron("30 8 * * *", "berlin_morning", timezone="Europe/Berlin")
    assert entry.next_tick(clock.now()) == datetime(2030, 7, 1, 6, 30, tzinfo=UTC)
    scheduler = scheduler_for(service, store)
    await scheduler.run_once(clock.now())
    clock.set(datetime(2030, 7, 1, 6, 30, tzinfo=UTC))
    (job,) = await scheduler.run_once(clock.now())
    assert job.run_at == datetime(2030, 7, 1, 6, 30, tzinfo=UTC)


def test_bad_entries_are_refused_with_the_reason() -> None:
    service = Service("memory://", config=fast_config())
    cases = [
        (("61 * * * *", "t"), {}, "minute 61 is out of range"),
        (("@reboot", "t"), {}, "not supported"),
        (("* * * * *", "t"), {"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        (("* * * * *", "t"), {"queue": "no good"}, "'queue' must be"),
        (("* * * * *", "t"), {"delay": 5}, "a cron entry sets its own 'delay'"),
    ]
    for args, options, message in cases:
        with pytest.raises(JobRequestError, match=message):
            service.cron(*args, **options)
    service.cron("@hourly", "t")
    with pytest.raises(JobRequestError, match="already declared; give the second a name="):
        service.cron("@daily", "t")
    assert service.cron("@daily", "t", name="t daily").name == "t daily"


async def test_a_started_service_inserts_and_runs_the_job_of_each_tick(
    backend: str, tmp_path: Path
) -> None:
    clock = FakeClock(START)
    service = Service(make_store(backend, tmp_path), config=fast_config(), clock=clock)
    ran: list[datetime] = []

    @service.task("tick")
    async def tick(job: Job) -> None:
        ran.append(job.run_at)

    service.cron("* * * * *", "tick")
    await service.start()
    try:
        ((_entry, _last, upcoming),) = await service.cron_schedule()
        assert upcoming == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
        await wait_for(lambda: _recorded(service), message="the entry to be seen")
        for minute in (0, 1, 2):
            clock.set(datetime(2030, 1, 1, 12, minute, 10, tzinfo=UTC))
            await wait_for(lambda n=minute: len(ran) == n + 1, message=f"the {minute} tick job")
        assert ran == [datetime(2030, 1, 1, 12, m, tzinfo=UTC) for m in (0, 1, 2)]
        ((_entry, last, upcoming),) = await service.cron_schedule()
        assert last == datetime(2030, 1, 1, 12, 2, tzinfo=UTC)
        assert upcoming == datetime(2030, 1, 1, 12, 3, tzinfo=UTC)
    finally:
        await service.stop(grace=0)


async def _recorded(service: Service) -> bool:
    return bool(await service.store.cron_ticks())


def test_an_entry_that_can_never_fire_again_is_refused() -> None:
    service = Service("memory://", config=fast_config())
    # 02:30 on 8 March falls in New York's DST gap in every year to come.
    with pytest.raises(JobRequestError, match="no tick in America/New_York"):
        service.cron("30 2 8 3 */7", "t", timezone="America/New_York")
