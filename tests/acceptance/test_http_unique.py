"""unique_key and Idempotency-Key on POST /jobs: 202, then 200 with the same job, or 409."""

from __future__ import annotations

import asyncio

from tests.acceptance.conftest import Api, assert_json_error


async def test_a_repeat_returns_the_existing_job_with_200(api: Api) -> None:
    body = {"payload": {"task": "charge", "order": 7}, "unique_key": "charge-7"}
    first = await api.client.post("/jobs", json=body)
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    again = await api.client.post("/jobs", json=body)
    assert again.status_code == 200
    assert again.json() == {
        "message": "Job already exists",
        "job_id": job_id,
        "unique_key": "charge-7",
    }
    assert (await api.stats())["total"] == 1


async def test_the_same_key_with_another_payload_is_409(api: Api) -> None:
    await api.submit({"task": "charge", "order": 7}, unique_key="charge-7")
    response = await api.client.post(
        "/jobs", json={"payload": {"task": "charge", "order": 8}, "unique_key": "charge-7"}
    )
    assert_json_error(response, 409, "charge-7", "different payload")
    assert (await api.stats())["total"] == 1


async def test_the_idempotency_key_header_works_like_unique_key(api: Api) -> None:
    headers = {"Idempotency-Key": "req-1"}
    body = {"payload": {"task": "mail"}}
    first = await api.client.post("/jobs", json=body, headers=headers)
    second = await api.client.post("/jobs", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["job_id"] == first.json()["job_id"]
    assert (await api.job(first.json()["job_id"]))["unique_key"] == "req-1"
    clash = await api.client.post("/jobs", json={**body, "unique_key": "other"}, headers=headers)
    assert_json_error(clash, 400, "Idempotency-Key", "differ")


async def test_concurrent_posts_of_one_key_make_one_job(api: Api) -> None:
    body = {"payload": {"task": "once"}, "unique_key": "once"}
    responses = await asyncio.gather(*(api.client.post("/jobs", json=body) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [202]
    assert len({r.json()["job_id"] for r in responses}) == 1


async def test_a_batch_does_not_take_unique_keys(api: Api) -> None:
    response = await api.client.post(
        "/jobs/batch", json={"jobs": [{"payload": {}, "unique_key": "k"}]}
    )
    assert_json_error(response, 400, "jobs[0]", "unique_key")
