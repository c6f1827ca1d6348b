"""GET /queues and POST /queues/{name}/pause|resume."""

from __future__ import annotations

from tests.acceptance.conftest import Api, assert_json_error
from tests.conftest import wait_for


async def test_a_paused_queue_holds_its_jobs_until_resumed(live_api: Api) -> None:
    response = await live_api.client.post("/queues/default/pause")
    assert response.json() == {"message": "Queue paused", "queue": "default"}
    job_id = await live_api.submit({"task": "waits"})
    [queue] = (await live_api.client.get("/queues")).json()
    assert queue["name"] == "default"
    assert queue["paused"] is True
    assert queue["depth"] == 1
    assert queue["concurrency"] == 4
    assert queue["oldest_job_age"] >= 0
    assert (await live_api.job(job_id))["status"] == "queued"
    await live_api.client.post("/queues/default/resume")

    async def done() -> bool:
        return (await live_api.job(job_id))["status"] == "done"

    await wait_for(done, message="the job to run after resume")


async def test_queues_lists_known_queues_even_without_jobs(api: Api) -> None:
    await api.submit({"task": "x"}, queue="media")
    names = [queue["name"] for queue in (await api.client.get("/queues")).json()]
    assert names == ["media"]
    assert_json_error(await api.client.post("/queues/bad%20name/pause"), 400, "queue name")
