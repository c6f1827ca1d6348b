"""POST /jobs/batch: many jobs, one transaction, all or none."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import Api, assert_json_error


async def test_a_batch_is_stored_in_order_and_its_ids_returned(api: Api) -> None:
    jobs = [{"payload": {"task": "resize", "n": n}, "priority": n % 3} for n in range(250)]
    response = await api.client.post("/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202
    body = response.json()
    assert list(body) == ["message", "job_ids"]
    assert body["message"] == "Jobs accepted"
    ids = body["job_ids"]
    assert ids == sorted(ids)
    assert len(set(ids)) == 250
    last = await api.job(ids[-1])
    assert last["payload"] == {"task": "resize", "n": 249}
    assert last["priority"] == 249 % 3
    assert (await api.stats())["queued"] == 250


async def test_batched_jobs_run(live_api: Api) -> None:
    response = await live_api.client.post(
        "/jobs/batch", json={"jobs": [{"payload": {"task": "x"}}, {"payload": {"task": "y"}}]}
    )
    for job_id in response.json()["job_ids"]:
        assert (await live_api.wait_status(job_id, "done"))["result"]["job_id"] == job_id


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"jobs": []}, ("1 to 1000",)),
        ({"jobs": [{"payload": {}}] * 1001}, ("1 to 1000", "1001")),
        ({"jobs": {"payload": {}}}, ("list of job objects",)),
        ({"payload": {}}, ("list of job objects",)),
        ({"jobs": [{"payload": {}}], "extra": 1}, ("list of job objects",)),
        ({"jobs": [{"payload": {}}, 7]}, ("jobs[1]", "must be a JSON object")),
        ({"jobs": [{"payload": {}}, {}]}, ("jobs[1]", "Missing 'payload' field")),
        ({"jobs": [{"payload": {}, "priority": 12}]}, ("jobs[0]", "priority")),
        ({"jobs": [{"payload": {}, "run_at": "soon"}]}, ("jobs[0]", "run_at")),
    ],
)
async def test_one_bad_job_refuses_the_whole_batch(
    api: Api, body: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    response = await api.client.post("/jobs/batch", json=body)
    assert_json_error(response, 400, *fragments)
    assert (await api.stats())["total"] == 0
