"""Routes mounted in a user's own Starlette app: per-queue job routes, single handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from servcore import job_routes
from servcore.http import handlers
from tests.acceptance.conftest import Api, assert_json_error, client_for


@pytest.fixture
async def email_client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A plain Starlette app with the seed's per-pipeline routes for queue ``email``."""
    app = Starlette(routes=job_routes(api.service, "/email_jobs", queue="email"))
    async with client_for(app) as client:
        yield client


async def test_email_routes_put_jobs_in_the_email_queue(
    api: Api, email_client: httpx.AsyncClient
) -> None:
    response = await email_client.post("/email_jobs", json={"payload": {"task": "send"}})
    assert response.status_code == 202
    assert response.content == b'{"message":"Job accepted","job_id":1}'
    job = (await email_client.get("/email_jobs/1")).json()
    assert (job["id"], job["queue"], job["payload"]) == (1, "email", {"task": "send"})
    assert job == await api.job(1)


async def test_email_schedule_route_puts_jobs_in_the_email_queue(
    api: Api, email_client: httpx.AsyncClient
) -> None:
    response = await email_client.post(
        "/email_jobs/schedule", json={"payload": {}, "run_at": "2999-01-01T00:00:00Z"}
    )
    assert response.status_code == 202
    assert response.json() == {
        "message": "Job scheduled",
        "job_id": 1,
        "run_at": "2999-01-01T00:00:00.000000Z",
    }
    job = (await email_client.get("/email_jobs/1")).json()
    assert (job["queue"], job["scheduled"]) == ("email", True)


async def test_email_routes_hide_jobs_of_other_queues(
    api: Api, email_client: httpx.AsyncClient
) -> None:
    other = await api.submit({"task": "report"})
    response = await email_client.get(f"/email_jobs/{other}")
    assert response.status_code == 404
    assert response.content == b'{"error":"Job not found"}'
    assert (await email_client.get("/email_jobs/999")).status_code == 404


async def test_email_listing_shows_only_email_jobs(
    api: Api, email_client: httpx.AsyncClient
) -> None:
    await api.submit()
    first = (await email_client.post("/email_jobs", json={"payload": {}})).json()["job_id"]
    await api.submit(queue="reports")
    second = (await email_client.post("/email_jobs", json={"payload": {}})).json()["job_id"]

    response = await email_client.get("/email_jobs")
    assert [job["id"] for job in response.json()] == [second, first]
    assert response.headers["x-total-count"] == "2"
    other_queue = await email_client.get("/email_jobs", params={"queue": "reports"})
    assert (other_queue.json(), other_queue.headers["x-total-count"]) == ([], "0")
    same_queue = await email_client.get("/email_jobs", params={"queue": "email"})
    assert [job["id"] for job in same_queue.json()] == [second, first]


async def test_email_routes_refuse_another_queue_in_the_body(
    api: Api, email_client: httpx.AsyncClient
) -> None:
    refused = await email_client.post("/email_jobs", json={"payload": {}, "queue": "reports"})
    assert_json_error(refused, 400, "queue", "email")
    named = await email_client.post("/email_jobs", json={"payload": {}, "queue": "email"})
    assert named.status_code == 202
    assert (await api.stats())["total"] == 1


async def test_email_routes_give_the_seed_errors(email_client: httpx.AsyncClient) -> None:
    missing = await email_client.post("/email_jobs", json={"max_attempts": 2})
    assert (missing.status_code, missing.json()) == (400, {"error": "Missing 'payload' field"})
    schedule = await email_client.post("/email_jobs/schedule", json={"payload": {}})
    assert schedule.status_code == 400
    assert schedule.json() == {"error": "Required fields: payload (object), run_at (ISO8601)"}
    assert_json_error(await email_client.get("/email_jobs/abc"), 400, "job id")
    assert_json_error(await email_client.get("/email_jobs?status=nope"), 400, "status")


async def test_default_and_per_queue_routes_side_by_side(api: Api) -> None:
    app = Starlette(
        routes=[
            *job_routes(api.service),
            *job_routes(api.service, "/email_jobs", queue="email"),
        ]
    )
    async with client_for(app) as client:
        await client.post("/jobs", json={"payload": {}})
        await client.post("/email_jobs", json={"payload": {}})
        everything = (await client.get("/jobs")).json()
        email_only = (await client.get("/email_jobs")).json()
        by_id = await client.get("/jobs/2")
    assert [(job["id"], job["queue"]) for job in everything] == [(2, "email"), (1, "default")]
    assert [job["id"] for job in email_only] == [2]
    assert by_id.json()["queue"] == "email"


async def test_job_routes_mount_under_a_prefix(api: Api) -> None:
    app = Starlette(routes=[Mount("/api", routes=job_routes(api.service, "/email", "email"))])
    async with client_for(app) as client:
        created = await client.post("/api/email", json={"payload": {}})
        fetched = await client.get("/api/email/1")
    assert created.status_code == 202
    assert (fetched.status_code, fetched.json()["queue"]) == (200, "email")


async def test_single_handlers_mount_in_a_users_app(api: Api) -> None:
    async def own(request: Request) -> Response:
        return PlainTextResponse("mine")

    service = api.service
    app = Starlette(
        routes=[
            Route("/", own),
            Route("/submit", partial(handlers.create_job, service=service), methods=["POST"]),
            Route(
                "/later",
                partial(handlers.schedule_job, service=service, queue="later"),
                methods=["POST"],
            ),
            Route("/job/{id}", partial(handlers.get_job, service=service)),
            Route("/all", partial(handlers.list_jobs, service=service)),
            Route("/alive", partial(handlers.health, service=service)),
            Route("/counts", partial(handlers.stats, service=service)),
            Route("/hello", partial(handlers.root, service=service)),
        ]
    )
    async with client_for(app) as client:
        assert (await client.get("/")).text == "mine"
        assert (await client.get("/hello")).text == "Server is running"
        submitted = await client.post("/submit", json={"payload": {"task": "x"}})
        assert submitted.content == b'{"message":"Job accepted","job_id":1}'
        later = await client.post(
            "/later", json={"payload": {}, "run_at": "2999-01-01T00:00:00+00:00"}
        )
        assert later.json()["run_at"] == "2999-01-01T00:00:00.000000Z"
        assert (await client.get("/job/1")).json()["payload"] == {"task": "x"}
        assert (await client.get("/job/2")).json()["queue"] == "later"
        assert [job["id"] for job in (await client.get("/all")).json()] == [2, 1]
        assert (await client.get("/alive")).content == b'{"status":"OK"}'
        counts = (await client.get("/counts")).json()
        assert (counts["queued"], counts["scheduled"], counts["total"]) == (2, 1, 2)

        # Bad input is answered by the handlers themselves, with no app-level handlers.
        missing = await client.post("/submit", json={})
        assert (missing.status_code, missing.json()) == (400, {"error": "Missing 'payload' field"})
        assert_json_error(await client.post("/submit", content=b"{"), 400, "Malformed JSON")
        assert_json_error(await client.get("/job/x"), 400, "job id")
        unknown = await client.get("/job/99")
        assert (unknown.status_code, unknown.json()) == (404, {"error": "Job not found"})
