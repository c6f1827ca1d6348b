"""Conformance: the leader lease and the writes it fences, on every store."""

from __future__ import annotations

import asyncio

from servcore.jobs import JobStatus
from servcore.leadership.base import LeaderTerm
from servcore.store.base import Store
from tests.conformance.support import (
    LEASE,
    T0,
    at,
    claim,
    completion,
    fetch,
    insert,
    new_job,
)

A, B = "node-a", "node-b"
TTL = 10.0  # the leader lease in these tests, seconds


async def seek(store: Store, node: str, seconds: float) -> LeaderTerm | None:
    """``node`` asks for the lease at ``at(seconds)``."""
    return await store.seek_leadership(node, at(seconds), at(seconds + TTL))


async def test_one_node_holds_the_lease_and_renews_it_in_the_same_term(store: Store) -> None:
    first = await seek(store, A, 0)
    assert first is not None
    assert first.node == A
    assert await seek(store, B, 1) is None  # held by A
    renewed = await seek(store, A, 5)
    assert renewed == first
    # Renewed at 5: still A's at 14, though 0 + TTL has passed.
    assert await seek(store, B, 14) is None


async def test_a_lapsed_lease_goes_to_the_next_asker_in_a_higher_term(store: Store) -> None:
    old = await seek(store, A, 0)
    assert old is not None
    taken = await seek(store, B, TTL)  # A stopped renewing: it lapses at TTL
    assert taken is not None
    assert taken.node == B
    assert taken.term > old.term
    # The old leader wakes: the lease is not its any more.
    assert await seek(store, A, TTL + 1) is None
    # Even the same node, asking after its own lease lapsed, starts a new term.
    again = await seek(store, B, 2 * TTL + 1)
    assert again is not None
    assert again.term > taken.term


async def test_a_resigned_lease_is_taken_at_once_and_terms_keep_rising(store: Store) -> None:
    held = await seek(store, A, 0)
    assert held is not None
    await store.resign_leadership(held, at(1))
    taken = await seek(store, B, 1)
    assert taken is not None
    assert taken.term > held.term
    # A resign under a term that is no longer current changes nothing.
    await store.resign_leadership(held, at(2))
    assert await seek(store, A, 2) is None
    await store.resign_leadership(taken, at(3))
    back = await seek(store, A, 3)
    assert back is not None
    assert back.term > taken.term


async def test_of_many_nodes_asking_at_once_one_gets_the_lease(store: Store) -> None:
    answers = await asyncio.gather(*(seek(store, f"node-{n}", 0) for n in range(10)))
    assert len([answer for answer in answers if answer is not None]) == 1


async def stale_and_current(store: Store) -> tuple[LeaderTerm, LeaderTerm]:
    """A's term, then B's that replaced it after A's lease lapsed."""
    stale = await seek(store, A, 0)
    current = await seek(store, B, TTL)
    assert stale is not None
    assert current is not None
    return stale, current


async def test_a_replaced_leader_cannot_prune(store: Store) -> None:
    stale, current = await stale_and_current(store)
    await insert(store, new_job())
    [job] = await claim(store)
    await store.complete_jobs([completion(job, finished_at=at(1))])

    assert await store.prune_finished(at(100), fence=stale) == 0
    assert (await fetch(store, job.id)).status is JobStatus.DONE
    assert await store.prune_finished(at(100), fence=current) == 1
    assert await store.get_job(job.id) is None


async def test_a_replaced_leader_cannot_expire_results(store: Store) -> None:
    stale, current = await stale_and_current(store)
    await insert(store, new_job(result_ttl=1))
    [job] = await claim(store)
    await store.complete_jobs([completion(job, finished_at=at(1))])

    assert await store.expire_results(at(100), fence=stale) == 0
    assert (await fetch(store, job.id)).status is JobStatus.DONE
    assert await store.expire_results(at(100), fence=current) == 1


async def test_a_replaced_leader_cannot_insert_a_cron_job_or_record_a_tick(store: Store) -> None:
    stale, current = await stale_and_current(store)
    await store.advance_cron("tick", at(0), None, T0, fence=current)

    assert await store.advance_cron("tick", at(60), new_job(), T0, fence=stale) is None
    assert await store.cron_ticks() == {"tick": at(0)}
    assert (await store.count_jobs(T0)).total == 0
    assert await store.advance_cron("tick", at(60), new_job(), T0, fence=current) is not None
    assert await store.cron_ticks() == {"tick": at(60)}


async def test_a_replaced_leader_cannot_rescue(store: Store) -> None:
    stale, current = await stale_and_current(store)
    await insert(store, new_job())
    [job] = await claim(store)
    lapsed = T0 + 2 * LEASE

    report = await store.rescue_expired_leases(lapsed, 3, fence=stale)
    assert (report.requeued, report.failed) == ([], [])
    assert (await fetch(store, job.id)).status is JobStatus.RUNNING
    report = await store.rescue_expired_leases(lapsed, 3, fence=current)
    assert report.requeued == [job.id]


async def test_a_fence_before_any_lease_was_taken_is_refused(store: Store) -> None:
    await insert(store, new_job())
    [job] = await claim(store)
    await store.complete_jobs([completion(job, finished_at=at(1))])
    assert await store.prune_finished(at(100), fence=LeaderTerm(A, 1)) == 0
    assert await store.prune_finished(at(100)) == 1  # unfenced: as before
