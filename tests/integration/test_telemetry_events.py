"""The documented telemetry events, with their documented fields, on every store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from servcore import Discard, Job, Retry, Service, create_app
from servcore.store.base import ClaimParams
from servcore.testing import FakeClock
from tests.acceptance.conftest import client_for
from tests.conftest import fast_config, finished, hanging, make_store, wait_for

JOB_FIELDS = {"queue", "task", "job_id", "attempt", "node", "trace_context"}
Seen = list[tuple[str, dict[str, Any], dict[str, Any]]]


def recorder(service: Service, events: list[str]) -> Seen:
    seen: Seen = []
    service.telemetry.attach("test", events, lambda e, m, d: seen.append((e, dict(m), dict(d))))
    return seen


def of(seen: Seen, event: str, **where: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (m, d)
        for e, m, d in seen
        if e == event and all(d.get(key) == value for key, value in where.items())
    ]


@pytest.fixture
async def service(backend: str, tmp_path: Path) -> AsyncIterator[Service]:
    svc = Service(make_store(backend, tmp_path), config=fast_config(lease=2))
    try:
        yield svc
    finally:
        await svc.stop(grace=0)


async def test_job_events_carry_the_documented_fields(service: Service) -> None:
    seen = recorder(
        service,
        [
            "job.start",
            "job.stop",
            "job.exception",
            "job.retry_scheduled",
            "job.discarded",
            "job.cancelled",
        ],
    )

    @service.task("ok")
    async def ok(job: Job) -> str:
        return "fine"

    @service.task("flaky")
    async def flaky(job: Job) -> None:
        if job.attempt == 1:
            raise Retry(after=0, reason="once more")
        raise Discard("give up")

    await service.start()
    done = await service.enqueue("ok")
    failed = await service.enqueue("flaky", max_attempts=3)
    await finished(service, done.id)
    await finished(service, failed.id)

    ((start_m, start_d),) = of(seen, "job.start", job_id=done.id)
    assert set(start_d) == JOB_FIELDS
    assert (start_d["queue"], start_d["task"], start_d["attempt"], start_d["node"]) == (
        "default",
        "ok",
        1,
        "test-node",
    )
    assert start_m["queue_latency"] >= 0
    ((stop_m, stop_d),) = of(seen, "job.stop", job_id=done.id)
    assert stop_d["outcome"] == "done"
    assert stop_m["duration"] >= 0
    assert stop_m["queue_latency"] >= 0

    exceptions = of(seen, "job.exception", job_id=failed.id)
    assert [(d["attempt"], d["outcome"], d["error"]) for _, d in exceptions] == [
        (1, "retry", "once more"),
        (2, "failed", "give up"),
    ]
    ((retry_m, retry_d),) = of(seen, "job.retry_scheduled", job_id=failed.id)
    assert retry_m["delay"] == 0
    assert retry_d["error"] == "once more"
    ((_, discarded),) = of(seen, "job.discarded", job_id=failed.id)
    assert discarded["error"] == "give up"
    assert of(seen, "job.cancelled") == []


async def test_a_cancelled_running_job_tells_exception_and_cancelled(service: Service) -> None:
    seen = recorder(service, ["job.start", "job.exception", "job.cancelled"])
    hanging(service, "hangs")

    await service.start()
    job = await service.enqueue("hangs")
    await wait_for(lambda: bool(of(seen, "job.start")), message="the job to start")
    await service.cancel_job(job.id)
    await wait_for(lambda: bool(of(seen, "job.cancelled")), message="job.cancelled")
    ((_, exception),) = of(seen, "job.exception", job_id=job.id)
    assert exception["outcome"] == "cancelled"


async def test_rescues_are_told(backend: str, tmp_path: Path) -> None:
    clock = FakeClock()
    service = Service(make_store(backend, tmp_path), config=fast_config(lease=2), clock=clock)
    seen = recorder(service, ["job.rescued"])
    await service.store.open()
    try:
        job = await service.enqueue("anything")
        now = clock.now()
        await service.store.claim_jobs(
            ClaimParams("default", 1, "dead-node", now, now + timedelta(seconds=2))
        )
        clock.advance(3)
        await service.node.rescuer.run_once(clock.now())
    finally:
        await service.store.close()
    ((measured, metadata),) = of(seen, "job.rescued")
    assert measured == {"count": 1}
    assert metadata["job_ids"] == [job.id]
    assert metadata["failed_ids"] == []


async def test_http_store_and_queue_events(service: Service) -> None:
    seen = recorder(service, ["http.start", "http.stop", "store.call", "queue.depth"])
    service.configure(sample_interval=0.05)
    client = client_for(create_app(service, manage_service=False))
    await service.start(workers=False)
    try:
        response = await client.post("/jobs", json={"payload": {"task": "x"}})
        job_id = response.json()["job_id"]
        await client.get(f"/jobs/{job_id}")
        await client.get("/queues")
        await client.get("/nowhere")
    finally:
        await client.aclose()
        await service.stop()
    stops = [(d["method"], d["route"], d["status"]) for _, d in of(seen, "http.stop")]
    assert stops == [
        ("POST", "/jobs", 202),
        ("GET", "/jobs/{id}", 200),
        ("GET", "/queues", 200),
        ("GET", "unmatched", 404),
    ]
    assert all(m["duration"] > 0 for m, _ in of(seen, "http.stop"))
    assert [d["path"] for _, d in of(seen, "http.start")][:2] == ["/jobs", f"/jobs/{job_id}"]
    operations = {d["operation"] for _, d in of(seen, "store.call")}
    assert {"insert_jobs", "get_job", "list_queues"} <= operations


async def test_queue_depth_is_sampled_on_worker_nodes(service: Service) -> None:
    seen = recorder(service, ["queue.depth"])
    service.configure(sample_interval=0.05, queues=("idle",))
    await service.start()
    try:
        await service.enqueue("x", queue="waiting")
        await wait_for(lambda: _sampled(seen, "waiting"), message="a sample of 'waiting'")
    finally:
        await service.stop()
    measured, metadata = of(seen, "queue.depth", queue="waiting")[-1]
    assert measured["available"] == 1
    assert set(measured) == {"available", "scheduled", "running", "oldest_age"}
    assert metadata["paused"] is False


def _sampled(seen: Seen, queue: str) -> Callable[[], bool] | bool:
    return bool(of(seen, "queue.depth", queue=queue))


async def test_a_run_cut_short_by_shutdown_ends_released(service: Service) -> None:
    seen = recorder(service, ["job.start", "job.stop", "job.exception"])
    hanging(service, "slow")

    await service.start()
    job = await service.enqueue("slow")
    await wait_for(lambda: bool(of(seen, "job.start")), message="the job to start")
    await service.stop(grace=0.05)
    ((_, ended),) = of(seen, "job.exception", job_id=job.id)
    assert ended["outcome"] == "released"
    assert [e for e, _, _ in seen] == ["job.start", "job.exception"]


async def test_a_run_whose_job_was_cancelled_behind_its_back_ends_cancelled(
    service: Service,
) -> None:
    seen = recorder(service, ["job.start", "job.exception"])
    service.configure(lease=0.6)
    hanging(service, "hangs")

    await service.start()
    job = await service.enqueue("hangs")
    await wait_for(lambda: bool(of(seen, "job.start")), message="the job to start")
    await service.store.cancel_jobs([job.id], service.clock.now())
    await wait_for(lambda: bool(of(seen, "job.exception")), message="the run to stop")
    ((_, ended),) = of(seen, "job.exception", job_id=job.id)
    assert ended["outcome"] == "cancelled"
