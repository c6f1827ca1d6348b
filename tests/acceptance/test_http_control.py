"""POST /jobs/{id}/cancel and /retry."""

from __future__ import annotations

import asyncio

from servcore import Job, Service
from tests.acceptance.conftest import Api, OpenApi, assert_json_error
from tests.conftest import hanging, wait_for


async def test_cancel_a_scheduled_job_then_retry_it(api: Api) -> None:
    job_id = await api.submit({"task": "later"}, delay=3600)
    response = await api.client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert (body["message"], body["job_id"]) == ("Job cancelled", job_id)
    assert body["job"]["status"] == "cancelled"
    assert_json_error(await api.client.post(f"/jobs/{job_id}/cancel"), 409, "cancelled")
    retried = await api.client.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 200
    assert retried.json()["job"]["status"] == "queued"
    assert retried.json()["job"]["scheduled"] is False
    assert_json_error(await api.client.post(f"/jobs/{job_id}/retry"), 409, "queued")


async def test_a_retried_job_runs(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "later"}, delay=3600)
    await live_api.client.post(f"/jobs/{job_id}/cancel")
    await live_api.client.post(f"/jobs/{job_id}/retry")
    assert (await live_api.wait_status(job_id, "done"))["result"]["job_id"] == job_id


async def test_control_of_unknown_or_bad_ids(api: Api) -> None:
    assert_json_error(await api.client.post("/jobs/424242/cancel"), 404, "Job not found")
    assert_json_error(await api.client.post("/jobs/424242/retry"), 404, "Job not found")
    assert_json_error(await api.client.post("/jobs/abc/cancel"), 400, "positive integer")


async def test_cancel_a_running_job(live_api: Api) -> None:
    hang = hanging(live_api.service)
    job_id = await live_api.submit({"task": "hangs"})
    await asyncio.wait_for(hang.started.wait(), 10)
    assert (await live_api.job(job_id))["status"] == "running"
    response = await live_api.client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["job"]["status"] == "cancelled"
    runtime = live_api.service.runtimes["default"]
    await wait_for(lambda: not runtime.in_flight, message="the run to stop")
    assert (await live_api.job(job_id))["status"] == "cancelled"


async def test_a_finished_job_cannot_be_cancelled(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "quick"})
    await live_api.wait_status(job_id, "done")
    assert_json_error(
        await live_api.client.post(f"/jobs/{job_id}/cancel"),
        409,
        "Job",
        "is done",
        "only queued, scheduled or running jobs can be cancelled",
    )


async def test_bulk_cancel_and_retry_of_listed_jobs(api: Api) -> None:
    ids = [await api.submit({"task": "later"}, delay=3600) for _ in range(3)]
    response = await api.client.post("/jobs/cancel", json={"ids": [*ids[:2], 424242]})
    assert response.status_code == 200
    assert response.json() == {"message": "2 job(s) cancelled", "cancelled": ids[:2]}
    assert (await api.job(ids[2]))["status"] == "queued"
    response = await api.client.post("/jobs/retry", json={"ids": ids})
    assert response.json() == {"message": "2 job(s) retried", "retried": ids[:2]}
    for bad in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [0]}, {"ids": [1], "x": 1}):
        assert_json_error(await api.client.post("/jobs/cancel", json=bad), 400, "ids")


async def test_bulk_cancel_of_every_queued_job_matching_a_filter(api: Api) -> None:
    mail = [await api.submit({"task": "send"}, queue="mail", delay=3600) for _ in range(3)]
    other_task = await api.submit({"task": "digest"}, queue="mail", delay=3600)
    other_queue = await api.submit({"task": "send"}, queue="work", delay=3600)

    response = await api.client.post(
        "/jobs/cancel", json={"filter": {"queue": "mail", "task": "send"}}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"message": "3 job(s) cancelled", "cancelled": mail}
    for job_id in mail:
        assert (await api.job(job_id))["status"] == "cancelled"
    for job_id in (other_task, other_queue):
        assert (await api.job(job_id))["status"] == "queued"
    # Nothing left to match: the same call changes nothing.
    again = await api.client.post(
        "/jobs/cancel", json={"filter": {"queue": "mail", "task": "send"}}
    )
    assert again.json() == {"message": "0 job(s) cancelled", "cancelled": []}


async def test_bulk_retry_of_every_failed_job_matching_a_filter(open_api: OpenApi) -> None:
    def declare_failing(service: Service) -> None:
        @service.task("flaky")
        async def flaky(job: Job) -> None:
            raise RuntimeError("down")

    api = await open_api(workers=True, declare=declare_failing)
    failing = [await api.submit({"task": "flaky", "n": n}, max_attempts=1) for n in range(3)]
    for job_id in failing:
        await api.wait_status(job_id, "failed")
    cancelled = await api.submit({"task": "flaky"}, delay=3600)
    await api.client.post(f"/jobs/{cancelled}/cancel")

    # Status defaults to failed: the cancelled one stays as it is.
    response = await api.client.post("/jobs/retry", json={"filter": {"task": "flaky"}})

    assert response.status_code == 200, response.text
    assert response.json() == {"message": "3 job(s) retried", "retried": failing}
    assert (await api.job(cancelled))["status"] == "cancelled"
    searched = await api.client.post(
        "/jobs/retry", json={"filter": {"status": "cancelled", "q": str(cancelled)}}
    )
    assert searched.json()["retried"] == [cancelled]


async def test_bulk_filters_that_are_refused(api: Api) -> None:
    refused = [
        ("/jobs/cancel", {"filter": {"status": "failed"}}, "queued, scheduled, available, running"),
        ("/jobs/retry", {"filter": {"status": "queued"}}, "failed, cancelled"),
        ("/jobs/retry", {"filter": {"status": "nope"}}, "Unknown status"),
        ("/jobs/retry", {"filter": {"status": ""}}, "failed, cancelled here, not ''"),
        ("/jobs/retry", {"filter": {"queue": 3}}, "'filter.queue' must be a string"),
        ("/jobs/retry", {"filter": {"node": "a"}}, "status, queue, task, q"),
        ("/jobs/retry", {"filter": []}, "status, queue, task, q"),
        ("/jobs/retry", {"filter": {}, "ids": [1]}, "ids"),
        ("/jobs/cancel", {"filter": {"q": "x" * 201}}, "at most 200"),
    ]
    for path, body, fragment in refused:
        assert_json_error(await api.client.post(path, json=body), 400, fragment)
