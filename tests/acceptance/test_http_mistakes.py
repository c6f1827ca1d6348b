"""Mistakes that used to look like success: a task without a handler, a
queue nobody declares or serves; and job records showing what they run with."""

from __future__ import annotations

from datetime import timedelta

from servcore import Pipeline, Service
from servcore.job_reads import NodeInfo
from servcore.jobs import Job, NewJob
from servcore.retry import Backoff
from servcore.testing import FakeClock
from tests.acceptance.conftest import Api, OpenApi, assert_json_error
from tests.conformance.support import T0

KNOWN = "(known: charge, send_email)"


def declare_tasks(service: Service) -> None:
    @service.task("send_email", timeout=30, max_attempts=5, backoff=Backoff(base=4))
    async def send_email(job: Job) -> str:
        return "sent"

    @service.task("charge")
    async def charge(job: Job) -> str:
        return "charged"


async def test_every_way_in_refuses_a_task_without_a_handler(open_api: OpenApi) -> None:
    api = await open_api(declare=declare_tasks)
    typo = f"no handler for task 'send_emial' {KNOWN}"
    for path, body in [
        ("/jobs", {"payload": {"task": "send_emial"}}),
        ("/jobs/schedule", {"payload": {"task": "send_emial"}, "run_at": "2030-01-01T00:00:00Z"}),
    ]:
        assert (await api.client.post(path, json=body)).json() == {"error": typo}
    batch = {"jobs": [{"payload": {"task": "charge"}}, {"payload": {"task": "send_emial"}}]}
    response = await api.client.post("/jobs/batch", json=batch)
    assert response.json() == {"error": f"jobs[1]: {typo}"}
    keyed = await api.client.post(
        "/jobs", json={"payload": {"task": "send_emial"}}, headers={"Idempotency-Key": "k-1"}
    )
    assert_json_error(keyed, 400, typo)
    no_task = await api.client.post("/jobs", json={"payload": {"to": "a@example.com"}})
    assert_json_error(no_task, 400, f"no handler for a job without a 'task' in its payload {KNOWN}")
    assert (await api.stats())["total"] == 0


async def test_a_stored_job_without_a_handler_fails_at_once(open_api: OpenApi) -> None:
    api = await open_api(workers=True, declare=declare_tasks)
    # Stored by a node that knew no tasks (nothing here checks it).
    [stored] = await api.service.store.insert_jobs(
        [NewJob({"task": "send_emial"}, api.service.clock.now(), task="send_emial")],
        api.service.clock.now(),
    )
    job = await api.wait_status(stored.id, "failed")
    assert (job["attempt"], job["max_attempts"]) == (1, 3)
    assert [error["error"] for error in job["errors"]] == [
        f"no handler for task 'send_emial' {KNOWN}"
    ]


async def test_without_registered_tasks_the_demo_handler_runs_any_task(live_api: Api) -> None:
    job_id = await live_api.submit({"task": "process_data"})
    job = await live_api.wait_status(job_id, "done")
    assert job["result"]["status"] == "completed"


async def test_a_job_shows_the_timeout_attempts_and_backoff_it_runs_with(
    open_api: OpenApi,
) -> None:
    api = await open_api(declare=declare_tasks)
    declared = await api.job(await api.submit({"task": "send_email"}))
    assert (declared["timeout"], declared["max_attempts"], declared["backoff"]) == (30, 5, 4)
    plain = await api.job(await api.submit({"task": "charge"}))
    assert (plain["timeout"], plain["max_attempts"], plain["backoff"]) == (None, 3, 1)
    asked = await api.job(
        await api.submit({"task": "send_email"}, timeout=2.5, max_attempts=1, backoff=0)
    )
    assert (asked["timeout"], asked["max_attempts"], asked["backoff"]) == (2.5, 1, 0)


def declare_pipelines(service: Service) -> None:
    service.add_pipeline(Pipeline("email"))
    service.add_pipeline(Pipeline("media"))


async def test_declared_pipelines_refuse_a_queue_nobody_declares(open_api: OpenApi) -> None:
    api = await open_api(declare=declare_pipelines)
    refused = "no queue 'emial' is declared (known: default, email, media)"
    response = await api.client.post("/jobs", json={"payload": {}, "queue": "emial"})
    assert response.json() == {"error": refused}
    batch = {"jobs": [{"payload": {}, "queue": "emial"}]}
    assert (await api.client.post("/jobs/batch", json=batch)).json() == {
        "error": f"jobs[0]: {refused}"
    }
    await api.submit({}, queue="email")
    await api.submit({})
    assert (await api.stats())["total"] == 2


async def test_open_queues_flag_ready_jobs_no_live_node_serves(open_api: OpenApi) -> None:
    clock = FakeClock(T0)
    # /health's warnings are read at most once per sample_interval (by the
    # service's clock too): each step below moves the clock past it.
    api = await open_api(workers=True, clock=clock, sample_interval=1.0)
    await api.submit({"task": "x"}, queue="emial")
    ran = await api.submit({"task": "x"})
    await api.wait_status(ran, "done")

    async def flags() -> dict[str, bool]:
        response = await api.client.get("/queues")
        return {queue["name"]: queue["unserved"] for queue in response.json()}

    assert await flags() == {"default": False, "emial": False}
    clock.advance(60)  # not yet longer than a minute
    assert await flags() == {"default": False, "emial": False}
    assert (await api.client.get("/health")).json() == {"status": "OK"}

    clock.advance(1.5)
    assert await flags() == {"default": False, "emial": True}
    health = await api.client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "OK",
        "warnings": {
            "queue emial": "1 job(s) ready, the oldest for 62 s, and no live worker node "
            "runs this queue"
        },
    }

    # A live node that runs the queue (as its heartbeat in the node registry says).
    await api.service.store.record_node(
        NodeInfo("other-node", clock.now(), clock.now(), ("emial",), leader=False)
    )
    clock.advance(1)  # past the interval of /health's warnings
    assert await flags() == {"default": False, "emial": False}
    assert (await api.client.get("/health")).json() == {"status": "OK"}
    clock.advance(timedelta(minutes=1).total_seconds())  # its heartbeats stopped
    assert await flags() == {"default": False, "emial": True}
