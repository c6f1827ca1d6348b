"""Fixtures for the HTTP contract tests: a service on each backend behind an in-process client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from starlette.types import ASGIApp

from servcore import Service, create_app
from servcore.clock import Clock
from servcore.testing import drain
from tests.conftest import fast_config, make_store, wait_for

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
SEED_FIELDS = ["id", "payload", "status", "inserted_at", "started_at", "finished_at", "result"]


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@dataclass
class Api:
    """A started service and a client talking to its whole HTTP app."""

    service: Service
    client: httpx.AsyncClient

    async def submit(self, payload: dict[str, Any] | None = None, **fields: Any) -> int:
        """POST /jobs; the new job's id (the request must be accepted)."""
        body = {"payload": {} if payload is None else payload, **fields}
        response = await self.client.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert isinstance(job_id, int)
        return job_id

    async def job(self, job_id: int) -> dict[str, Any]:
        """GET /jobs/{id} (the job must exist)."""
        response = await self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    async def stats(self) -> dict[str, int]:
        response = await self.client.get("/stats")
        assert response.status_code == 200, response.text
        counts: dict[str, int] = response.json()
        return counts

    async def wait_status(self, job_id: int, status: str) -> dict[str, Any]:
        """Run what is due, then wait until the job reaches ``status``."""
        if self.service.runtimes:
            await drain(self.service)

        async def reached() -> bool:
            return (await self.job(job_id))["status"] == status

        await wait_for(reached, message=f"job {job_id} to be {status}")
        return await self.job(job_id)


class OpenApi(Protocol):
    def __call__(
        self,
        *,
        workers: bool = False,
        clock: Clock | None = None,
        declare: Callable[[Service], object] | None = None,
        **config: Any,
    ) -> Awaitable[Api]: ...


@pytest.fixture
async def open_api(backend: str, tmp_path: Path) -> AsyncIterator[OpenApi]:
    """Start services (on the test's backend) with clients; all stopped afterwards."""
    opened: list[Api] = []

    async def open_(
        *,
        workers: bool = False,
        clock: Clock | None = None,
        declare: Callable[[Service], object] | None = None,
        **config: Any,
    ) -> Api:
        """``declare`` is called on the service before it starts (tasks, cron)."""
        directory = tmp_path / f"service-{len(opened)}"
        directory.mkdir()
        options: dict[str, Any] = {"config": fast_config(**config)}
        if clock is not None:
            options["clock"] = clock
        service = Service(make_store(backend, directory), **options)
        if declare is not None:
            declare(service)
        await service.start(workers=workers)
        api = Api(service, client_for(create_app(service, manage_service=False)))
        opened.append(api)
        return api

    try:
        yield open_
    finally:
        for api in reversed(opened):
            await api.client.aclose()
            await api.service.stop(grace=0)


@pytest.fixture
async def api(open_api: OpenApi) -> Api:
    """A started service without workers: accepted jobs stay queued."""
    return await open_api()


@pytest.fixture
async def live_api(open_api: OpenApi) -> Api:
    """A started service with workers running its queues."""
    return await open_api(workers=True)


def assert_json_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The response is ``status`` with a JSON ``{"error": …}`` naming each fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str)
    assert message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (fragment, message)
    return message
