"""``/``, ``/health``, ``/stats`` and ``/openapi.json`` as the seed (and DESIGN.md) fix them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from servcore import Cancel, Discard, Job, Pipeline, Service, create_app
from servcore.http.endpoints import EndpointRoute
from servcore.http.gate import RouteIndex
from servcore.http.routes import ENDPOINTS, openapi_document
from servcore.testing import FakeClock
from tests.acceptance.conftest import Api, OpenApi, client_for
from tests.conftest import fast_config, make_store, wait_for

STATS_KEYS = [
    "queued",
    "running",
    "done",
    "failed",
    "total",
    "cancelled",
    "scheduled",
    "available",
]


async def test_root_says_the_server_is_running(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status_code == 200
    assert response.content == b"Server is running"
    assert response.headers["content-type"].startswith("text/plain")


async def test_health_is_ok_when_every_part_is_up(api: Api) -> None:
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.content == b'{"status":"OK"}'
    assert response.headers["content-type"] == "application/json"


async def test_health_with_workers_running_is_ok(live_api: Api) -> None:
    response = await live_api.client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "OK"})


async def test_health_is_degraded_and_names_a_queue_that_is_down(api: Api) -> None:
    api.service.health_state.down("queue default", "boom")
    response = await api.client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "DEGRADED", "problems": {"queue default": "boom"}}

    api.service.health_state.ok("queue default")
    recovered = await api.client.get("/health")
    assert (recovered.status_code, recovered.content) == (200, b'{"status":"OK"}')


async def test_health_is_degraded_when_the_store_reports_a_problem(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.service.store, "problem", lambda: "disk full")
    response = await api.client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "DEGRADED", "problems": {"store": "disk full"}}


async def test_health_is_degraded_before_the_service_starts(backend: str, tmp_path: Path) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config())
    async with client_for(create_app(service, manage_service=False)) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "DEGRADED"
    assert body["problems"]["service"] == "not started"


async def test_stats_of_an_empty_store_are_all_zero_seed_keys_first(api: Api) -> None:
    response = await api.client.get("/stats")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == STATS_KEYS
    assert body == dict.fromkeys(STATS_KEYS, 0)


async def test_stats_count_queued_and_scheduled_jobs(api: Api) -> None:
    await api.submit()
    await api.submit()
    await api.submit(delay=3600)
    assert await api.stats() == {
        "queued": 3,
        "running": 0,
        "done": 0,
        "failed": 0,
        "total": 3,
        "cancelled": 0,
        "scheduled": 1,
        "available": 2,
    }


async def test_stats_move_as_jobs_run(live_api: Api) -> None:
    release = asyncio.Event()

    @live_api.service.task("hold")
    async def hold(job: Job) -> str:
        await release.wait()
        return "released"

    @live_api.service.task("discard")
    async def discard(job: Job) -> None:
        raise Discard("no use")

    @live_api.service.task("cancel")
    async def cancel(job: Job) -> None:
        raise Cancel("not wanted")

    @live_api.service.task("plain")
    async def plain(job: Job) -> str:
        return "plain"

    held = await live_api.submit({"task": "hold"})
    await live_api.submit({"task": "discard"})
    await live_api.submit({"task": "cancel"})
    await live_api.submit({"task": "plain"})
    await live_api.submit({"task": "plain"}, delay=3600)
    await live_api.submit({"task": "plain"}, queue="idle")

    settled = {
        "queued": 2,
        "running": 1,
        "done": 1,
        "failed": 1,
        "total": 6,
        "cancelled": 1,
        "scheduled": 1,
        "available": 1,
    }

    async def counts_are(expected: dict[str, int]) -> bool:
        return await live_api.stats() == expected

    await wait_for(lambda: counts_are(settled), message=f"stats {settled}")
    assert list(await live_api.stats()) == STATS_KEYS

    release.set()
    await live_api.wait_status(held, "done")
    finished = {**settled, "running": 0, "done": 2}
    await wait_for(lambda: counts_are(finished), message=f"stats {finished}")


async def test_openapi_document_is_openapi_3_1(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert isinstance(document["paths"], dict)


async def test_openapi_lists_every_route_and_method_of_the_app(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    app = create_app(api.service, manage_service=False)
    served: dict[str, set[str]] = {}
    for route in app.routes:
        assert isinstance(route, Route)
        if route.path.startswith("/dashboard"):
            continue  # the dashboard's pages (not the JSON API)
        methods = {method.lower() for method in route.methods or ()} - {"head"}
        served.setdefault(route.path, set()).update(methods)
    assert set(document["paths"]) == set(served)
    for path, methods in served.items():
        assert set(document["paths"][path]) == methods, path
        for method in methods:
            assert document["paths"][path][method]["responses"], (path, method)


async def test_every_endpoint_is_routed_once_with_its_own_scope(api: Api) -> None:
    app = create_app(api.service, manage_service=False)
    routed = [
        (method, route.path, endpoint)
        for route in app.routes
        if isinstance(route, EndpointRoute)
        for method, endpoint in route.endpoints.items()
    ]
    assert sorted((method, path) for method, path, _ in routed) == sorted(
        (endpoint.method, endpoint.path) for endpoint in ENDPOINTS
    )
    index = RouteIndex(app.routes)
    for endpoint in ENDPOINTS:
        concrete = endpoint.path.replace("{id}", "1").replace("{name}", "default")
        found = index.find(endpoint.method, concrete)
        assert found is not None, endpoint.path
        assert found[1] is endpoint, endpoint.path  # the guard reads this entry's scope
        document = openapi_document()["paths"][endpoint.path][endpoint.method.lower()]
        assert document["responses"] == endpoint.responses


async def test_a_pipeline_serves_the_per_queue_endpoints_under_its_prefix(
    open_api: OpenApi,
) -> None:
    api = await open_api(declare=lambda s: s.add_pipeline(Pipeline("email", routes="/email_jobs")))
    app = create_app(api.service, manage_service=False)
    email = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, EndpointRoute) and route.queue == "email"
        for method in route.endpoints
    }
    assert email == {
        (endpoint.method, endpoint.path.replace("/jobs", "/email_jobs", 1))
        for endpoint in ENDPOINTS
        if endpoint.per_queue
    }


async def test_openapi_references_resolve(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    references: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    references.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(document["paths"])
    assert references
    schemas = document["components"]["schemas"]
    for reference in references:
        prefix = "#/components/schemas/"
        assert reference.startswith(prefix)
        assert reference.removeprefix(prefix) in schemas


async def test_openapi_job_schema_lists_every_field_a_job_has(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    job_id = await api.submit()
    job = await api.job(job_id)
    assert set(document["components"]["schemas"]["Job"]["properties"]) == set(job)


async def test_cron_lists_entries_with_their_last_and_next_run(open_api: OpenApi) -> None:
    clock = FakeClock(datetime(2030, 1, 1, 11, 59, 30, tzinfo=UTC))
    empty = await open_api(clock=clock)
    assert (await empty.client.get("/cron")).json() == []
    api = await open_api(clock=clock, declare=lambda s: s.cron("0 * * * *", "sync", queue="io"))
    listed = (await api.client.get("/cron")).json()
    assert listed == [
        {
            "name": "sync",
            "expression": "0 * * * *",
            "timezone": "UTC",
            "task": "sync",
            "queue": "io",
            "payload": {"task": "sync"},
            "priority": 0,
            "max_attempts": 3,
            "last_run_at": None,
            "next_run_at": "2030-01-01T12:00:00.000000Z",
            "last_job_id": None,
        }
    ]


async def test_cron_names_the_job_an_entry_last_inserted(open_api: OpenApi) -> None:
    clock = FakeClock(datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC))
    api = await open_api(clock=clock, declare=lambda s: s.cron("* * * * *", "sync"))
    [entry] = api.service.cron_entries.values()
    store = api.service.store
    await store.advance_cron("sync", datetime(2030, 1, 1, 11, 59, tzinfo=UTC), None, clock.now())
    tick = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    job = await store.advance_cron("sync", tick, entry.job_for(tick), clock.now())
    assert job is not None
    [listed] = (await api.client.get("/cron")).json()
    assert (listed["last_run_at"], listed["last_job_id"]) == ("2030-01-01T12:00:00.000000Z", job.id)


async def test_tasks_lists_the_registered_tasks_with_their_defaults(open_api: OpenApi) -> None:
    empty = await open_api()
    assert (await empty.client.get("/tasks")).json() == []

    def declare(service: Service) -> None:
        @service.task("send_email", queue="mail", max_attempts=5, timeout=30)
        async def send_email(job: Job) -> None: ...

        @service.task("render")
        def render(job: Job) -> None: ...

    api = await open_api(declare=declare)
    assert (await api.client.get("/tasks")).json() == [
        {
            "name": "render",
            "queue": "default",
            "max_attempts": 3,
            "timeout": None,
            "backoff": None,
            "executor": "thread",
        },
        {
            "name": "send_email",
            "queue": "mail",
            "max_attempts": 5,
            "timeout": 30,
            "backoff": None,
            "executor": "async",
        },
    ]
