"""Pausing queues and tallying them, on every store."""

from __future__ import annotations

from servcore.store.base import Store
from tests.conformance.support import T0, at, claim, claim_one, insert, new_job


async def test_a_paused_queue_keeps_accepting_but_starts_nothing(store: Store) -> None:
    await store.set_paused("default", True)
    (job,) = await insert(store, new_job())
    assert await claim(store) == []
    assert (await insert(store, new_job("other")))[0].queue == "other"
    assert len(await claim(store, "other")) == 1  # other queues are not affected
    await store.set_paused("default", False)
    assert [j.id for j in await claim(store)] == [job.id]


async def test_queue_tallies(store: Store) -> None:
    await insert(store, new_job(), new_job(), new_job(run_at=at(60)), new_job("media"))
    await claim_one(store)
    await store.set_paused("idle", True)
    by_name = {info.name: info for info in await store.list_queues(T0)}
    assert sorted(by_name) == ["default", "idle", "media"]
    default = by_name["default"]
    assert (default.available, default.scheduled, default.running) == (1, 1, 1)
    assert default.oldest_available_at == T0
    assert default.paused is False
    assert by_name["idle"].paused is True
    assert by_name["idle"].available == 0
    assert by_name["media"].available == 1
