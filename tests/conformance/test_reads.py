"""Conformance: listing, counting, and finding the next due time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

import pytest

from servcore.job_reads import JobQuery, StatusFilter
from servcore.jobs import JobStatus
from servcore.store.base import Store
from tests.conformance.support import (
    T0,
    at,
    claim,
    claim_one,
    completion,
    failure,
    insert,
    new_job,
)


@dataclass(frozen=True)
class Population:
    """Ids of jobs in every state, seen at ``T0``."""

    due: list[int]  # queued, run_at <= T0
    scheduled: list[int]  # queued, run_at > T0
    running: list[int]
    done: list[int]
    failed: list[int]
    cancelled: list[int]

    def ids(self, status: str) -> list[int]:
        """The expected ids for a status filter, newest first."""
        groups = {
            "queued": self.due + self.scheduled,
            "available": self.due,
            "scheduled": self.scheduled,
            "running": self.running,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }
        return sorted(groups[status], reverse=True)


async def populate(store: Store) -> Population:
    """Two queued-due and two scheduled jobs across two queues, plus one per end state."""
    due_default = await insert(store, new_job("default", run_at=at(-60)))
    work = await insert(store, *(new_job("work") for _ in range(4)))
    scheduled_default = await insert(store, new_job("default", run_at=at(3600)))
    due_mail = await insert(store, new_job("mail", run_at=T0))
    scheduled_mail = await insert(store, new_job("mail", run_at=at(1)))
    running, done, failed, cancelled = await claim(store, "work")
    assert [job.id for job in (running, done, failed, cancelled)] == [job.id for job in work]
    assert await store.complete_jobs([completion(done, result="ok")]) == []
    assert await store.fail_jobs([failure(failed), failure(cancelled, cancel=True)]) == []
    return Population(
        due=[due_default[0].id, due_mail[0].id],
        scheduled=[scheduled_default[0].id, scheduled_mail[0].id],
        running=[running.id],
        done=[done.id],
        failed=[failed.id],
        cancelled=[cancelled.id],
    )


async def test_list_is_newest_first(store: Store) -> None:
    jobs = await insert(store, *(new_job(priority=index % 3) for index in range(7)))

    page = await store.list_jobs(JobQuery(), T0)

    assert [job.id for job in page.jobs] == sorted((job.id for job in jobs), reverse=True)
    assert page.total == 7
    assert page.jobs[-1] == jobs[0]


async def test_list_of_an_empty_store(store: Store) -> None:
    page = await store.list_jobs(JobQuery(), T0)
    assert (page.jobs, page.total) == ([], 0)


@pytest.mark.parametrize(
    "status", ["queued", "available", "scheduled", "running", "done", "failed", "cancelled"]
)
async def test_list_filters_by_status(store: Store, status: str) -> None:
    population = await populate(store)

    page = await store.list_jobs(JobQuery(status=status), T0)

    assert [job.id for job in page.jobs] == population.ids(status)
    assert page.total == len(population.ids(status))


def test_every_status_filter_is_covered() -> None:
    covered = {"queued", "available", "scheduled", "running", "done", "failed", "cancelled"}
    assert covered == StatusFilter.ALL


async def test_status_filters_use_the_given_now(store: Store) -> None:
    population = await populate(store)
    mail_scheduled = population.scheduled[1]  # run_at = T0 + 1 s

    scheduled = await store.list_jobs(JobQuery(status="scheduled"), at(1))
    available = await store.list_jobs(JobQuery(status="available"), at(1))

    assert [job.id for job in scheduled.jobs] == [population.scheduled[0]]
    assert [job.id for job in available.jobs] == sorted(
        [*population.due, mail_scheduled], reverse=True
    )


async def test_list_filters_by_queue_and_status_together(store: Store) -> None:
    population = await populate(store)

    mail = await store.list_jobs(JobQuery(queue="mail"), T0)
    work_done = await store.list_jobs(JobQuery(queue="work", status="done"), T0)
    mail_running = await store.list_jobs(JobQuery(queue="mail", status="running"), T0)
    nobody = await store.list_jobs(JobQuery(queue="nobody"), T0)

    assert [job.id for job in mail.jobs] == sorted(
        [population.due[1], population.scheduled[1]], reverse=True
    )
    assert all(job.queue == "mail" for job in mail.jobs)
    assert mail.total == 2
    assert [job.id for job in work_done.jobs] == population.done
    assert work_done.jobs[0].result == "ok"
    assert (mail_running.jobs, mail_running.total) == ([], 0)
    assert (nobody.jobs, nobody.total) == ([], 0)


async def test_listed_jobs_carry_their_state(store: Store) -> None:
    population = await populate(store)

    page = await store.list_jobs(JobQuery(queue="work"), T0)

    states = {job.id: job.status for job in page.jobs}
    assert states == {
        population.running[0]: JobStatus.RUNNING,
        population.done[0]: JobStatus.DONE,
        population.failed[0]: JobStatus.FAILED,
        population.cancelled[0]: JobStatus.CANCELLED,
    }
    for job in page.jobs:
        assert job == await store.get_job(job.id)


async def test_offset_and_limit_page_through_with_the_full_total(store: Store) -> None:
    jobs = await insert(store, *(new_job() for _ in range(12)))
    await insert(store, *(new_job("other") for _ in range(3)))
    newest_first = sorted((job.id for job in jobs), reverse=True)

    pages = [
        await store.list_jobs(JobQuery(queue="default", offset=offset, limit=5), T0)
        for offset in (0, 5, 10, 15)
    ]

    assert [[job.id for job in page.jobs] for page in pages] == [
        newest_first[0:5],
        newest_first[5:10],
        newest_first[10:12],
        [],
    ]
    assert [page.total for page in pages] == [12, 12, 12, 12]
    everything = await store.list_jobs(JobQuery(offset=2, limit=3), T0)
    assert everything.total == 15
    assert len(everything.jobs) == 3


async def test_counts_cover_every_state(store: Store) -> None:
    await populate(store)

    counts = await store.count_jobs(T0)

    assert (counts.queued, counts.scheduled, counts.available) == (4, 2, 2)
    assert (counts.running, counts.done, counts.failed, counts.cancelled) == (1, 1, 1, 1)
    assert counts.total == 8
    later = await store.count_jobs(at(1))
    assert (later.queued, later.scheduled, later.available) == (4, 1, 3)


async def test_counts_follow_claims_and_outcomes(store: Store) -> None:
    assert (await store.count_jobs(T0)).total == 0
    await insert(store, new_job(), new_job(), new_job(run_at=at(10)))
    first, second = await claim(store)
    await store.fail_jobs([failure(first, retry_at=at(20))])
    await store.complete_jobs([completion(second)])

    counts = await store.count_jobs(T0)

    assert (counts.queued, counts.scheduled, counts.running, counts.done) == (2, 2, 0, 1)
    assert counts.total == 3


async def test_next_run_at_is_none_without_queued_jobs(store: Store) -> None:
    assert await store.next_run_at("default") is None
    await insert(store, new_job("other"), new_job())
    running = await claim_one(store)
    await store.complete_jobs([completion(running)])

    assert await store.next_run_at("default") is None
    assert await store.next_run_at("nobody") is None


async def test_next_run_at_is_the_earliest_scheduled_time(store: Store) -> None:
    await insert(store, new_job(run_at=at(300)), new_job(run_at=at(120)), new_job(run_at=at(600)))
    await insert(store, new_job("other", run_at=at(5)))

    assert await store.next_run_at("default") == at(120)
    [claimed] = await claim(store, now=at(120))
    assert await store.next_run_at("default") == at(300)
    await store.fail_jobs([failure(claimed, at_time=at(121), retry_at=at(200))])
    assert await store.next_run_at("default") == at(200)


async def test_next_run_at_is_the_earliest_among_due_jobs_whatever_their_priority(
    store: Store,
) -> None:
    await insert(
        store,
        new_job(run_at=at(-60), priority=0),
        new_job(run_at=at(-600), priority=5),
        new_job(run_at=at(-6), priority=1),
    )

    assert await store.next_run_at("default") == at(-600)


async def test_next_run_at_counts_a_job_that_came_due_before_a_ready_one(store: Store) -> None:
    # Written while still in the future; due by the time the second is written.
    await insert(store, new_job(run_at=at(5)), now=T0)
    await insert(store, new_job(run_at=at(10)), now=at(10))

    assert await store.next_run_at("default") == at(5)


async def test_next_run_at_after_a_short_claim_follows_every_later_write(store: Store) -> None:
    await insert(store, new_job(run_at=at(10)))
    assert await claim(store) == []  # the queue has run dry
    assert await store.next_run_at("default") == at(10)
    await insert(store, new_job(run_at=at(5)))
    assert await store.next_run_at("default") == at(5)
    running = (await insert(store, new_job()))[0]
    [claimed] = await claim(store)
    assert claimed.id == running.id
    await store.fail_jobs([failure(claimed, retry_at=at(2))])
    assert await store.next_run_at("default") == at(2)
    assert await store.next_run_at("elsewhere") is None


async def test_jobs_are_filtered_by_task_and_found_by_id_or_payload_text(store: Store) -> None:
    emails = await insert(
        store,
        new_job(task="send_email", payload={"task": "send_email", "to": "Ada@Example.com"}),
        new_job(task="send_email", payload={"task": "send_email", "to": "bob@example.com"}),
        new_job(task="resize", payload={"task": "resize", "file": "ada.png"}),
    )
    by_task = await store.list_jobs(JobQuery(task="send_email"), T0)
    assert [job.id for job in by_task.jobs] == [emails[1].id, emails[0].id]
    assert by_task.total == 2
    found = await store.list_jobs(JobQuery(search="ADA"), T0)
    assert {job.id for job in found.jobs} == {emails[0].id, emails[2].id}
    both = await store.list_jobs(JobQuery(search="ada", task="resize"), T0)
    assert [job.id for job in both.jobs] == [emails[2].id]
    by_id = await store.list_jobs(JobQuery(search=str(emails[1].id)), T0)
    assert emails[1].id in [job.id for job in by_id.jobs]
    assert (await store.list_jobs(JobQuery(search="nobody"), T0)).total == 0


async def test_finished_jobs_are_counted_per_minute(store: Store) -> None:
    await insert(store, *(new_job() for _ in range(4)))
    await insert(store, new_job("mail"), new_job("mail"))
    first, second, third, old = await claim(store)
    mail, mail_failed = await claim(store, "mail")
    await store.complete_jobs(
        [
            completion(first, finished_at=at(65)),
            completion(second, finished_at=at(70)),
            completion(old, finished_at=at(-600)),
            completion(mail, finished_at=at(61)),
        ]
    )
    await store.fail_jobs(
        [
            failure(third, at_time=at(130), retry_at=None),
            failure(mail_failed, at_time=at(70), retry_at=None),
        ]
    )
    counted = await store.finished_per_minute(at(0))
    minute = T0.replace(second=0, microsecond=0)
    assert counted == [
        (minute + timedelta(minutes=1), "default", "done", 2),
        (minute + timedelta(minutes=1), "mail", "done", 1),
        (minute + timedelta(minutes=1), "mail", "failed", 1),
        (minute + timedelta(minutes=2), "default", "failed", 1),
    ]


@pytest.mark.parametrize(
    "status", ["queued", "available", "scheduled", "running", "done", "failed", "cancelled"]
)
async def test_matching_ids_are_every_listed_job_ascending(store: Store, status: str) -> None:
    population = await populate(store)

    # A limit and offset of 1 would list one job: the ids are all of them.
    matched = await store.matching_ids(JobQuery(status=status, offset=1, limit=1), T0)

    assert matched == sorted(population.ids(status))


async def test_matching_ids_filter_as_the_listing_does(store: Store) -> None:
    await populate(store)
    searched = await insert(
        store,
        new_job("mail", task="send", payload={"task": "send", "to": "Ada@example.com"}),
        new_job("mail", task="send", payload={"task": "send", "to": "bob@example.com"}),
        new_job("work", task="send", payload={"task": "send", "to": "ada@example.org"}),
    )
    queries = [
        JobQuery(queue="mail"),
        JobQuery(task="send"),
        JobQuery(queue="mail", task="send", search="ada"),
        JobQuery(status="available", queue="mail", search="ADA"),
        JobQuery(search=str(searched[1].id)),
        JobQuery(queue="nowhere"),
    ]
    for query in queries:
        listed = await store.list_jobs(dataclasses.replace(query, limit=1000), at(1))
        matched = await store.matching_ids(query, at(1))
        assert matched == sorted(job.id for job in listed.jobs), query
    assert await store.matching_ids(JobQuery(queue="mail", task="send", search="ada"), T0) == [
        searched[0].id
    ]
