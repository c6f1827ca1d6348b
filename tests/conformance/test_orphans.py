"""Conformance: release_orphans, for claims whose answer never reached their node."""

from __future__ import annotations

from servcore.jobs import JobStatus
from servcore.store.base import Store
from tests.conformance.support import NODE, T0, at, claim, fetch, insert, new_job


async def test_running_jobs_the_node_does_not_hold_go_back_without_an_attempt(
    store: Store,
) -> None:
    await insert(store, *(new_job() for _ in range(3)))
    held, lost, also_lost = await claim(store, now=T0)

    released = await store.release_orphans(NODE, [held.id], at(1))

    assert released == sorted([lost.id, also_lost.id])
    for job in (lost, also_lost):
        back = await fetch(store, job.id)
        assert back.status is JobStatus.QUEUED
        assert back.attempt == 0  # the claim's attempt is not spent
        assert (back.errors, back.rescued) == ((), 0)
        assert (back.locked_by, back.locked_until, back.started_at) == (None, None, None)
    assert (await fetch(store, held.id)).status is JobStatus.RUNNING
    # Back in the queue: the next claim takes them, as a first attempt.
    again = await claim(store, now=at(2))
    assert sorted(job.id for job in again) == released
    assert {job.attempt for job in again} == {1}


async def test_claims_from_the_cutoff_on_and_other_nodes_jobs_are_left_alone(
    store: Store,
) -> None:
    await insert(store, *(new_job() for _ in range(3)))
    [early] = await claim(store, limit=1, now=T0)
    [late] = await claim(store, limit=1, now=at(5))  # perhaps still on its way
    [theirs] = await claim(store, limit=1, now=T0, node="node-b")

    assert await store.release_orphans(NODE, [], at(5)) == [early.id]
    assert (await fetch(store, late.id)).status is JobStatus.RUNNING
    assert (await fetch(store, theirs.id)).status is JobStatus.RUNNING
    assert await store.release_orphans(NODE, [], at(5)) == []  # nothing left
