"""``GET /jobs``: newest first, status and queue filters, pages, ``X-Total-Count``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from servcore import Cancel, Discard, Job
from tests.acceptance.conftest import SEED_FIELDS, Api, assert_json_error
from tests.conftest import wait_for


async def listed(api: Api, **params: str | int) -> tuple[list[int], int]:
    """The ids on one page, and the X-Total-Count header."""
    response = await api.client.get("/jobs", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return [job["id"] for job in response.json()], int(response.headers["x-total-count"])


async def test_empty_store_lists_nothing(api: Api) -> None:
    response = await api.client.get("/jobs")
    assert response.status_code == 200
    assert response.content == b"[]"
    assert response.headers["x-total-count"] == "0"


async def test_jobs_are_listed_newest_first_with_seed_fields(api: Api) -> None:
    ids = [await api.submit({"task": f"t{n}"}) for n in range(3)]
    response = await api.client.get("/jobs")
    jobs = response.json()
    assert [job["id"] for job in jobs] == ids[::-1]
    assert [job["payload"]["task"] for job in jobs] == ["t2", "t1", "t0"]
    for job in jobs:
        assert list(job)[: len(SEED_FIELDS)] == SEED_FIELDS
        assert job == await api.job(job["id"])
    assert response.headers["x-total-count"] == "3"


async def test_pages_default_to_50_newest_first(api: Api) -> None:
    ids = [await api.submit() for _ in range(60)]
    newest_first = ids[::-1]
    response = await api.client.get("/jobs")
    assert [job["id"] for job in response.json()] == newest_first[:50]
    assert response.headers["x-total-count"] == "60"
    assert response.headers["x-page"] == "1"
    assert response.headers["x-per-page"] == "50"

    assert await listed(api, page=2) == (newest_first[50:], 60)
    assert await listed(api, page=3) == ([], 60)
    assert await listed(api, page=2, per_page=7) == (newest_first[7:14], 60)
    assert await listed(api, page=9, per_page=7) == (newest_first[56:], 60)
    assert await listed(api, per_page=1) == (newest_first[:1], 60)


async def test_per_page_may_be_200_but_not_more(api: Api) -> None:
    ids = [await api.submit() for _ in range(205)]
    page, total = await listed(api, per_page=200)
    assert (page, total) == (ids[::-1][:200], 205)
    assert_json_error(await api.client.get("/jobs?per_page=201"), 400, "per_page", "200")


@pytest.mark.parametrize(
    "query",
    [
        "per_page=201",
        "per_page=0",
        "per_page=-1",
        "per_page=x",
        "per_page=1.5",
        "per_page=99999999999999999999999",
        "page=0",
        "page=-1",
        "page=x",
        "page=2.0",
        "page=99999999999999999999999",
    ],
)
async def test_bad_page_parameters_are_400(api: Api, query: str) -> None:
    name = query.split("=")[0]
    assert_json_error(await api.client.get(f"/jobs?{query}"), 400, f"'{name}'")


@pytest.mark.parametrize("status", ["bogus", "DONE", "complete", "pending", "success"])
async def test_unknown_status_is_400_listing_the_valid_ones(api: Api, status: str) -> None:
    message = assert_json_error(await api.client.get("/jobs", params={"status": status}), 400)
    assert status in message
    for valid in ("queued", "running", "done", "failed", "cancelled", "scheduled", "available"):
        assert valid in message


@pytest.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    event = asyncio.Event()
    try:
        yield event
    finally:
        event.set()


@pytest.fixture
async def every_state(live_api: Api, release: asyncio.Event) -> dict[str, list[int]]:
    """One job in each state; the expected ids per status filter, newest first."""
    service = live_api.service

    @service.task("hold")
    async def hold(job: Job) -> str:
        await release.wait()
        return "released"

    @service.task("discard")
    async def discard(job: Job) -> None:
        raise Discard("no use")

    @service.task("cancel")
    async def cancel(job: Job) -> None:
        raise Cancel("not wanted")

    @service.task("plain")
    async def plain(job: Job) -> str:
        return "plain"

    running = await live_api.submit({"task": "hold"})
    failed = await live_api.submit({"task": "discard"})
    cancelled = await live_api.submit({"task": "cancel"})
    done = await live_api.submit({"task": "plain"})
    scheduled = await live_api.submit({"task": "plain"}, delay=3600)
    available = await live_api.submit({"task": "plain"}, queue="no_workers_here")
    expected = {
        "running": [running],
        "failed": [failed],
        "cancelled": [cancelled],
        "done": [done],
        "scheduled": [scheduled],
        "available": [available],
        "queued": [available, scheduled],
    }

    async def settled() -> bool:
        for status in ("running", "failed", "cancelled", "done"):
            if (await listed(live_api, status=status))[0] != expected[status]:
                return False
        return True

    await wait_for(settled, message="one job in each state")
    return expected


@pytest.mark.parametrize(
    "status", ["queued", "running", "done", "failed", "cancelled", "scheduled", "available"]
)
async def test_status_filter(live_api: Api, every_state: dict[str, list[int]], status: str) -> None:
    response = await live_api.client.get("/jobs", params={"status": status})
    assert response.status_code == 200
    jobs = response.json()
    assert [job["id"] for job in jobs] == every_state[status]
    assert response.headers["x-total-count"] == str(len(every_state[status]))
    seed_status = {"scheduled": "queued", "available": "queued"}.get(status, status)
    assert {job["status"] for job in jobs} == {seed_status}
    if status == "scheduled":
        assert all(job["scheduled"] for job in jobs)
    if status == "available":
        assert not any(job["scheduled"] for job in jobs)


async def test_no_or_empty_status_lists_every_state(
    live_api: Api, every_state: dict[str, list[int]]
) -> None:
    all_ids = sorted({i for ids in every_state.values() for i in ids}, reverse=True)
    assert await listed(live_api) == (all_ids, 6)
    assert await listed(live_api, status="") == (all_ids, 6)


async def test_status_filter_pages_and_counts(api: Api) -> None:
    later = [await api.submit(delay=3600) for _ in range(5)]
    due = [await api.submit() for _ in range(3)]
    assert await listed(api, status="scheduled", per_page=2) == (later[::-1][:2], 5)
    assert await listed(api, status="scheduled", per_page=2, page=3) == (later[:1], 5)
    assert await listed(api, status="available") == (due[::-1], 3)
    assert await listed(api, status="queued") == ((later + due)[::-1], 8)
    assert await listed(api, status="done") == ([], 0)


async def test_queue_filter(api: Api) -> None:
    email = [await api.submit({"n": n}, queue="email") for n in range(3)]
    default = [await api.submit({"n": n}) for n in range(2)]
    reports = [await api.submit(queue="reports", delay=3600)]
    assert await listed(api, queue="email") == (email[::-1], 3)
    assert await listed(api, queue="default") == (default[::-1], 2)
    assert await listed(api, queue="reports", status="scheduled") == (reports, 1)
    assert await listed(api, queue="reports", status="available") == ([], 0)
    assert await listed(api, queue="email", per_page=2, page=2) == (email[:1], 3)
    assert await listed(api, queue="nobody") == ([], 0)
    assert await listed(api) == ((email + default + reports)[::-1], 6)
    response = await api.client.get("/jobs", params={"queue": "email"})
    assert {job["queue"] for job in response.json()} == {"email"}
