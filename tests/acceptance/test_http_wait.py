"""``GET /jobs/{id}?wait=S``: answers once the job has finished, or after S
seconds with its state then; the same JSON as without ``wait``."""

from __future__ import annotations

import asyncio
import time

import pytest

from servcore import Job, Service
from tests.acceptance.conftest import Api, OpenApi, assert_json_error
from tests.conftest import wait_for


def gated(gate: asyncio.Event) -> object:
    def declare(service: Service) -> None:
        @service.task("gated")
        async def run(job: Job) -> dict[str, str]:
            await gate.wait()
            return {"pdf": "ready"}

    return declare


async def test_a_wait_answers_as_soon_as_the_job_finishes(open_api: OpenApi) -> None:
    gate = asyncio.Event()
    api = await open_api(workers=True, declare=gated(gate))  # type: ignore[arg-type]
    job_id = await api.submit({"task": "gated"})
    waiting = asyncio.create_task(api.client.get(f"/jobs/{job_id}?wait=30", timeout=60))
    await wait_for(lambda: len(api.service.node.finishes) == 1, message="the waiting request")
    assert not waiting.done()
    gate.set()
    started = time.monotonic()
    response = await waiting
    assert time.monotonic() - started < 10  # well before the 30 s it would wait
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "done"
    assert body["result"] == {"pdf": "ready"}
    assert body == await api.job(job_id)  # the same JSON as a plain GET


async def test_a_wait_that_runs_out_answers_the_current_state(api: Api) -> None:
    job_id = await api.submit({"task": "nobody_runs_me"})
    started = time.monotonic()
    response = await api.client.get(f"/jobs/{job_id}", params={"wait": "0.3"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert response.json() == await api.job(job_id)


async def test_a_finished_or_unknown_job_answers_at_once(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "anything"})
    done = await live_api.wait_status(job_id, "done")
    started = time.monotonic()
    response = await live_api.client.get(f"/jobs/{job_id}?wait=60")
    assert response.json() == done
    missing = await live_api.client.get("/jobs/987654?wait=60")
    assert_json_error(missing, 404, "not found")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("value", ["0", "-1", "60.5", "61", "abc", "", "nan", "inf", "1e999"])
async def test_a_wait_out_of_range_is_refused(api: Api, value: str) -> None:
    job_id = await api.submit({"task": "nobody_runs_me"})
    response = await api.client.get(f"/jobs/{job_id}", params={"wait": value})
    assert_json_error(response, 400, "'wait'", "at most 60")


async def test_the_wait_parameter_is_documented(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    parameters = document["paths"]["/jobs/{id}"]["get"]["parameters"]
    (wait,) = [p for p in parameters if p["name"] == "wait"]
    assert wait["in"] == "query"
    assert wait["schema"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 60}
