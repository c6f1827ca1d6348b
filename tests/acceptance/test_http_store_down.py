"""When the store fails, the API says so with a 503 instead of a bare 500."""

from __future__ import annotations

from typing import Any

from servcore.store.base import StoreError
from tests.acceptance.conftest import Api, assert_json_error


async def test_a_failing_store_answers_503_with_the_reason(api: Api) -> None:
    async def unavailable(*args: Any) -> Any:
        raise StoreError("disk is full")

    api.service.store.insert_jobs = unavailable  # type: ignore[method-assign]
    api.service.store.get_job = unavailable  # type: ignore[method-assign]
    response = await api.client.post("/jobs", json={"payload": {"task": "x"}})
    assert_json_error(response, 503, "store unavailable", "disk is full")
    assert_json_error(await api.client.get("/jobs/1"), 503, "disk is full")
