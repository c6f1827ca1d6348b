"""The rescuer on its own: requeues jobs whose lease ran out, spares what this
node still holds, fails poison pills, and says what it did."""

from __future__ import annotations

from servcore.jobs import JobStatus
from servcore.maintenance.rescuer import Rescuer
from servcore.store.base import RescueReport
from servcore.store.memory import MemoryStore
from servcore.testing import FakeClock
from tests.conformance.support import LEASE, NODE, claim, fetch, insert, new_job
from tests.unit.parts import T0


async def test_requeues_expired_jobs_and_spares_the_ones_held_here() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    await insert(store, new_job(), new_job(), new_job())
    lost, held, held_later = await claim(store, limit=3)
    await insert(store, new_job())
    clock.advance(20)
    (fresh,) = await claim(store, now=clock.now())  # its lease runs until T0 + 50 s
    reports: list[RescueReport] = []
    held_here = {held.id}
    rescuer = Rescuer(store, max_rescues=3, on_rescued=reports.append, held_here=lambda: held_here)

    clock.set(T0 + LEASE)  # the first three leases end now
    held_here.add(held_later.id)  # what is held is asked at each run, not at construction
    report = await rescuer.run_once(clock.now())

    assert (report.requeued, report.failed) == ([lost.id], [])
    assert reports == [report]
    assert rescuer.rescued == 1
    requeued = await fetch(store, lost.id)
    assert (requeued.status, requeued.rescued, requeued.locked_by) == (JobStatus.QUEUED, 1, None)
    assert requeued.run_at == clock.now()
    assert requeued.errors[-1].error.startswith(f"node lost: {NODE} stopped holding the job")
    for spared in (held, held_later, fresh):
        job = await fetch(store, spared.id)
        assert (job.status, job.lease_token) == (JobStatus.RUNNING, spared.lease_token)


async def test_a_job_no_longer_held_here_is_rescued_on_the_next_run() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    await insert(store, new_job())
    (job,) = await claim(store)
    held_here = {job.id}
    rescuer = Rescuer(store, max_rescues=3, held_here=lambda: held_here)
    clock.advance(LEASE.total_seconds() + 1)

    assert (await rescuer.run_once(clock.now())).requeued == []
    held_here.clear()
    assert (await rescuer.run_once(clock.now())).requeued == [job.id]


async def test_nothing_expired_reports_nothing() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    await insert(store, new_job())
    await claim(store)
    reports: list[RescueReport] = []
    rescuer = Rescuer(store, max_rescues=3, on_rescued=reports.append)

    clock.advance(LEASE.total_seconds() - 1)
    report = await rescuer.run_once(clock.now())

    assert (report.requeued, report.failed) == ([], [])
    assert reports == []
    assert rescuer.rescued == 0


async def test_a_poison_pill_is_failed_once_it_reaches_max_rescues() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    [pill] = await insert(store, new_job(max_attempts=10))
    reports: list[RescueReport] = []
    rescuer = Rescuer(store, max_rescues=2, on_rescued=reports.append)

    for _ in range(2):  # claimed, its worker dies, rescued: twice
        await claim(store, now=clock.now())
        clock.advance(LEASE.total_seconds())
        assert (await rescuer.run_once(clock.now())).requeued == [pill.id]
    await claim(store, now=clock.now())
    clock.advance(LEASE.total_seconds())
    report = await rescuer.run_once(clock.now())

    assert (report.requeued, report.failed) == ([], [pill.id])
    assert reports[-1] == report
    assert len(reports) == 3
    assert rescuer.rescued == 3
    failed = await fetch(store, pill.id)
    assert (failed.status, failed.attempt, failed.rescued) == (JobStatus.FAILED, 3, 3)
    assert failed.finished_at == clock.now()
    assert "rescued 3 times (limit 2)" in failed.errors[-1].error


async def test_a_job_on_its_last_attempt_is_failed_not_requeued() -> None:
    store, clock = MemoryStore(), FakeClock(T0)
    [last] = await insert(store, new_job(max_attempts=1))
    await claim(store)
    rescuer = Rescuer(store, max_rescues=5)
    clock.advance(LEASE.total_seconds())

    report = await rescuer.run_once(clock.now())

    assert report.failed == [last.id]
    failed = await fetch(store, last.id)
    assert failed.status is JobStatus.FAILED
    assert failed.errors[-1].error.endswith("no attempts left")
