"""advance_cron and cron_ticks, on every store: one winner per tick."""

from __future__ import annotations

import asyncio

from servcore.store.base import Store
from tests.conformance.support import T0, at, fetch, new_job


async def test_a_tick_is_recorded_once_and_only_forward(store: Store) -> None:
    assert await store.cron_ticks() == {}
    # A new entry: the tick is recorded, nothing inserted.
    assert await store.advance_cron("nightly", at(0), None, T0) is None
    assert await store.cron_ticks() == {"nightly": at(0)}
    assert await store.cron_last_jobs() == {}

    job = await store.advance_cron("nightly", at(60), new_job(task="report", run_at=at(60)), T0)
    assert job is not None
    stored = await fetch(store, job.id)
    assert (stored.task, stored.run_at) == ("report", at(60))
    assert await store.cron_ticks() == {"nightly": at(60)}

    # The same tick again, or an older one: nothing happens.
    assert await store.advance_cron("nightly", at(60), new_job(), T0) is None
    assert await store.advance_cron("nightly", at(30), new_job(), T0) is None
    assert await store.cron_ticks() == {"nightly": at(60)}
    assert await store.cron_last_jobs() == {"nightly": job.id}  # a lost tick leaves it
    # Entries are independent.
    hourly = await store.advance_cron("hourly", at(60), new_job(), T0)
    assert hourly is not None
    assert await store.cron_ticks() == {"nightly": at(60), "hourly": at(60)}
    assert await store.cron_last_jobs() == {"nightly": job.id, "hourly": hourly.id}
    later = await store.advance_cron("nightly", at(120), new_job(run_at=at(120)), T0)
    assert later is not None
    assert (await store.cron_last_jobs())["nightly"] == later.id


async def test_of_many_concurrent_callers_for_one_tick_one_inserts(store: Store) -> None:
    await store.advance_cron("every_minute", at(0), None, T0)
    results = await asyncio.gather(
        *(store.advance_cron("every_minute", at(60), new_job(), T0) for _ in range(20))
    )
    assert len([job for job in results if job is not None]) == 1
    assert (await store.count_jobs(T0)).total == 1
