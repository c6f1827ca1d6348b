"""``POST /jobs``, ``POST /jobs/schedule`` and ``GET /jobs/{id}``: the seed's shapes, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from servcore import Service, create_app
from servcore.testing import FakeClock, drain
from servcore.timestamps import parse_timestamp
from tests.acceptance.conftest import (
    ISO_UTC,
    SEED_FIELDS,
    Api,
    OpenApi,
    assert_json_error,
    client_for,
)
from tests.conftest import fast_config, make_store, wait_for

SCHEDULE_FIELDS = {"error": "Required fields: payload (object), run_at (ISO8601)"}


def moment(text: str) -> datetime:
    assert ISO_UTC.match(text), text
    return parse_timestamp(text)


async def test_first_job_is_accepted_with_the_seed_body_exactly(api: Api) -> None:
    response = await api.client.post("/jobs", json={"payload": {"task": "process_data"}})
    assert response.status_code == 202
    assert response.content == b'{"message":"Job accepted","job_id":1}'
    assert response.headers["content-type"] == "application/json"

    second = await api.client.post("/jobs", json={"payload": {"task": "process_data"}})
    assert second.content == b'{"message":"Job accepted","job_id":2}'


async def test_accepted_job_is_queued_with_seed_fields_first(api: Api) -> None:
    payload = {"task": "process_data", "value": 42, "nested": {"list": [1, 2.5, None, "é"]}}
    job_id = await api.submit(payload)
    job = await api.job(job_id)
    assert list(job)[: len(SEED_FIELDS)] == SEED_FIELDS
    assert set(job) - set(SEED_FIELDS) >= {
        "queue",
        "task",
        "priority",
        "attempt",
        "max_attempts",
        "run_at",
        "scheduled",
        "errors",
        "unique_key",
        "timeout",
        "backoff",
    }
    assert job["id"] == job_id
    assert job["payload"] == payload
    assert job["status"] == "queued"
    assert (job["started_at"], job["finished_at"], job["result"]) == (None, None, None)
    assert moment(job["inserted_at"]) <= datetime.now(UTC)
    assert job["task"] == "process_data"
    assert job["queue"] == "default"
    assert (job["priority"], job["attempt"], job["max_attempts"]) == (0, 0, 3)
    assert job["scheduled"] is False
    assert job["errors"] == []
    assert moment(job["run_at"]) <= datetime.now(UTC)


async def test_job_runs_to_the_seed_result(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "process_data", "value": 42})
    job = await live_api.wait_status(job_id, "done")
    assert list(job)[: len(SEED_FIELDS)] == SEED_FIELDS
    result = job["result"]
    assert list(result) == ["status", "job_id", "processed_at"]
    assert result["status"] == "completed"
    assert result["job_id"] == job_id
    inserted = moment(job["inserted_at"])
    started = moment(job["started_at"])
    processed = moment(result["processed_at"])
    finished = moment(job["finished_at"])
    assert inserted <= started <= processed <= finished
    assert job["attempt"] == 1
    assert job["errors"] == []


async def test_the_same_job_is_returned_in_the_listing(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "process_data"})
    job = await live_api.wait_status(job_id, "done")
    listed = (await live_api.client.get("/jobs")).json()
    assert listed == [job]


async def test_optional_fields_are_reflected_in_the_job(api: Api) -> None:
    job_id = await api.submit(
        {"task": "critical_task"},
        max_attempts=5,
        queue="email",
        priority=7,
        timeout=2.5,
        backoff=1.5,
        unique_key="order-42",
    )
    job = await api.job(job_id)
    assert job["max_attempts"] == 5
    assert job["queue"] == "email"
    assert job["priority"] == 7
    assert job["timeout"] == 2.5
    assert job["backoff"] == 1.5
    assert job["unique_key"] == "order-42"
    assert job["status"] == "queued"


async def test_null_optional_fields_mean_the_default(api: Api) -> None:
    job_id = await api.submit(max_attempts=None, queue=None, priority=None, unique_key=None)
    job = await api.job(job_id)
    assert (job["max_attempts"], job["queue"], job["priority"], job["unique_key"]) == (
        3,
        "default",
        0,
        None,
    )


async def test_run_at_with_an_offset_is_stored_in_utc(api: Api) -> None:
    job_id = await api.submit(run_at="2999-01-02T03:04:05.5+02:00")
    job = await api.job(job_id)
    assert job["run_at"] == "2999-01-02T01:04:05.500000Z"
    assert job["scheduled"] is True
    assert job["status"] == "queued"


async def test_delay_sets_run_at_that_many_seconds_ahead(open_api: OpenApi) -> None:
    clock = FakeClock()
    api = await open_api(clock=clock)
    job_id = await api.submit(delay=90)
    job = await api.job(job_id)
    assert moment(job["inserted_at"]) == clock.now()
    assert moment(job["run_at"]) == clock.now() + timedelta(seconds=90)
    assert job["scheduled"] is True

    clock.advance(90)
    assert (await api.job(job_id))["scheduled"] is False


async def test_a_delayed_job_does_not_run_before_its_time(open_api: OpenApi) -> None:
    clock = FakeClock()
    api = await open_api(workers=True, clock=clock)
    job_id = await api.submit({"task": "later"}, delay=60)
    assert await drain(api.service) == 0
    assert (await api.job(job_id))["status"] == "queued"

    clock.advance(60)
    job = await api.wait_status(job_id, "done")
    assert moment(job["started_at"]) >= moment(job["run_at"])


async def test_accepted_job_is_stored_before_the_response(api: Api) -> None:
    response = await api.client.post("/jobs", json={"payload": {"n": 1}})
    stored = await api.service.get_job(response.json()["job_id"])
    assert stored is not None
    assert stored.payload == {"n": 1}


async def test_accepted_job_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    first = Service(make_store("sqlite", tmp_path), config=fast_config())
    await first.start(workers=False)
    try:
        async with client_for(create_app(first, manage_service=False)) as client:
            response = await client.post("/jobs", json={"payload": {"task": "keep"}})
    finally:
        await first.stop(grace=0)
    assert response.status_code == 202

    second = Service(make_store("sqlite", tmp_path), config=fast_config())
    await second.start(workers=False)
    try:
        job = await second.get_job(response.json()["job_id"])
    finally:
        await second.stop(grace=0)
    assert job is not None
    assert job.payload == {"task": "keep"}


# -- POST /jobs/schedule ---------------------------------------------------


async def test_schedule_answers_with_the_seed_body(api: Api) -> None:
    response = await api.client.post(
        "/jobs/schedule",
        json={"payload": {"task": "send_reminder"}, "run_at": "2999-12-31T23:59:59Z"},
    )
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["message", "job_id", "run_at"]
    assert body == {
        "message": "Job scheduled",
        "job_id": 1,
        "run_at": "2999-12-31T23:59:59.000000Z",
    }
    job = await api.job(1)
    assert job["scheduled"] is True
    assert job["status"] == "queued"
    assert job["run_at"] == body["run_at"]
    assert job["payload"] == {"task": "send_reminder"}


async def test_schedule_run_at_with_an_offset_answers_in_utc(api: Api) -> None:
    response = await api.client.post(
        "/jobs/schedule", json={"payload": {}, "run_at": "2999-06-01T12:00:00-05:30"}
    )
    assert response.status_code == 202
    assert response.json()["run_at"] == "2999-06-01T17:30:00.000000Z"


async def test_schedule_takes_the_optional_fields(api: Api) -> None:
    response = await api.client.post(
        "/jobs/schedule",
        json={
            "payload": {"task": "report"},
            "run_at": "2999-01-01T00:00:00Z",
            "queue": "reports",
            "priority": 3,
            "max_attempts": 7,
            "unique_key": "daily",
        },
    )
    assert response.status_code == 202
    job = await api.job(response.json()["job_id"])
    assert (job["queue"], job["priority"], job["max_attempts"], job["unique_key"]) == (
        "reports",
        3,
        7,
        "daily",
    )


async def test_scheduled_job_does_not_run_before_run_at(open_api: OpenApi) -> None:
    clock = FakeClock()
    api = await open_api(workers=True, clock=clock)
    run_at = clock.now() + timedelta(hours=1)
    response = await api.client.post(
        "/jobs/schedule",
        json={"payload": {"task": "send_reminder"}, "run_at": run_at.isoformat()},
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    clock.advance(3599)
    assert await drain(api.service) == 0
    job = await api.job(job_id)
    assert (job["status"], job["scheduled"], job["started_at"]) == ("queued", True, None)

    clock.advance(1)
    job = await api.wait_status(job_id, "done")
    assert job["scheduled"] is False
    assert moment(job["started_at"]) >= run_at
    assert job["result"]["job_id"] == job_id


async def test_schedule_without_payload_or_run_at_gets_the_seed_error(api: Api) -> None:
    bodies = [
        {},
        {"payload": {}},
        {"run_at": "2999-01-01T00:00:00Z"},
        {"payload": "x", "run_at": "2999-01-01T00:00:00Z"},
        {"payload": [], "run_at": "2999-01-01T00:00:00Z"},
        {"payload": None, "run_at": "2999-01-01T00:00:00Z"},
        {"payload": {}, "run_at": 4102444800},
        {"payload": {}, "run_at": None},
        {"payload": {}, "run_at": ["2999-01-01T00:00:00Z"]},
    ]
    for body in bodies:
        response = await api.client.post("/jobs/schedule", json=body)
        assert response.status_code == 400, body
        assert response.json() == SCHEDULE_FIELDS, body
    assert (await api.stats())["total"] == 0


async def test_schedule_rejects_bad_run_at_and_delay(api: Api) -> None:
    cases = [
        ({"payload": {}, "run_at": "next tuesday"}, ["run_at"]),
        ({"payload": {}, "run_at": "2999-01-01T00:00:00"}, ["run_at", "time zone"]),
        ({"payload": {}, "run_at": "2999-13-01T00:00:00Z"}, ["run_at"]),
        ({"payload": {}, "run_at": "2999-01-01T00:00:00Z", "delay": 5}, ["delay"]),
        ({"payload": {}, "run_at": "2999-01-01T00:00:00Z", "colour": 1}, ["colour"]),
    ]
    for body, fragments in cases:
        response = await api.client.post("/jobs/schedule", json=body)
        assert_json_error(response, 400, *fragments)
    assert (await api.stats())["total"] == 0


async def test_a_finished_job_is_gone_after_its_result_ttl(open_api: OpenApi) -> None:
    clock = FakeClock()
    api = await open_api(workers=True, clock=clock)
    job_id = await api.submit({"task": "report"}, result_ttl=30)
    kept_id = await api.submit({"task": "report"})
    done = await api.wait_status(job_id, "done")
    assert done["result_ttl"] == 30
    await api.wait_status(kept_id, "done")
    clock.advance(29.9)
    assert (await api.client.get(f"/jobs/{job_id}")).status_code == 200
    clock.advance(0.1)
    assert_json_error(await api.client.get(f"/jobs/{job_id}"), 404, "Job not found")
    # The expirer then deletes it for good; the job without a ttl stays.
    await wait_for(lambda: _total(api), message="the expirer to delete the expired job")
    assert (await api.job(kept_id))["status"] == "done"


async def _total(api: Api) -> bool:
    return (await api.service.store.count_jobs(api.service.clock.now())).total == 1


async def test_result_ttl_must_be_a_positive_number(api: Api) -> None:
    for bad, fragment in [(0, "'result_ttl' must be > 0"), ("1", "'result_ttl' must be a number")]:
        response = await api.client.post("/jobs", json={"payload": {}, "result_ttl": bad})
        assert_json_error(response, 400, fragment)


async def test_an_expired_job_cannot_be_retried(open_api: OpenApi) -> None:
    clock = FakeClock()
    api = await open_api(clock=clock)
    job_id = await api.submit({"task": "x"}, result_ttl=5)
    await api.client.post(f"/jobs/{job_id}/cancel")
    clock.advance(5)
    assert_json_error(await api.client.post(f"/jobs/{job_id}/retry"), 404, "Job not found")
