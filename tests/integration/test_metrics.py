"""GET /metrics, parsed: counters and histograms move as jobs succeed, fail and retry."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servcore import Discard, Job, Retry, Service, create_app
from tests.acceptance.conftest import client_for
from tests.conftest import fast_config, finished, make_store, wait_for

DASHBOARD = Path(__file__).resolve().parents[2] / "observability" / "grafana-dashboard.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def live(backend: str, tmp_path: Path) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    service = Service(make_store(backend, tmp_path), config=fast_config(sample_interval=0.05))

    @service.task("ok")
    async def ok(job: Job) -> None:
        return None

    @service.task("flaky")
    async def flaky(job: Job) -> None:
        if job.attempt == 1:
            raise Retry(after=0)
        raise Discard("no")

    client = client_for(create_app(service, manage_service=False))
    await service.start()
    try:
        yield service, client
    finally:
        await client.aclose()
        await service.stop(grace=0)


async def test_job_counters_and_histograms_move(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = live
    before = await scrape(client)
    assert value(before, "servcore_jobs_total", queue="default", task="ok", outcome="done") == 0
    for _ in range(3):
        await finished(service, (await service.enqueue("ok")).id)
    await finished(service, (await service.enqueue("flaky")).id)
    after = await scrape(client)

    assert value(after, "servcore_jobs_total", queue="default", task="ok", outcome="done") == 3
    assert value(after, "servcore_jobs_total", queue="default", task="flaky", outcome="retry") == 1
    assert value(after, "servcore_jobs_total", queue="default", task="flaky", outcome="failed") == 1
    assert value(after, "servcore_job_retries_total", queue="default", task="flaky") == 1
    assert value(after, "servcore_job_duration_seconds_count", queue="default", task="ok") == 3
    assert (
        value(after, "servcore_job_duration_seconds_bucket", queue="default", task="ok", le="+Inf")
        == 3
    )
    assert value(after, "servcore_job_queue_latency_seconds_count", queue="default") == 5
    assert value(after, "servcore_job_duration_seconds_sum", queue="default", task="ok") >= 0


async def test_queue_gauges_running_jobs_and_http_requests(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = live
    await service.enqueue("ok", queue="elsewhere")  # no worker runs it here
    await client.get("/queues")

    async def sampled() -> bool:
        return value(await scrape(client), "servcore_queue_depth", queue="elsewhere") == 1

    await wait_for(sampled, message="the queue sampler to see 'elsewhere'")
    samples = await scrape(client)
    assert value(samples, "servcore_queue_paused", queue="elsewhere") == 0
    assert value(samples, "servcore_jobs_running", queue="default", node="test-node") == 0
    requests = value(
        samples, "servcore_http_requests_total", method="GET", route="/queues", status="200"
    )
    assert requests == 1
    assert (
        value(
            samples, "servcore_http_request_duration_seconds_count", method="GET", route="/queues"
        )
        == 1
    )
    assert (
        value(samples, "servcore_store_call_duration_seconds_count", operation="list_queues") >= 1
    )


async def test_an_api_only_node_exports_the_store_s_queues_and_job_totals(
    backend: str, tmp_path: Path
) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(sample_interval=0.05))
    client = client_for(create_app(service, manage_service=False))
    await service.start(workers=False)
    try:
        waiting = [await service.enqueue("x", queue="email") for _ in range(3)]
        await service.enqueue("x", queue="email", delay=3600)
        first = await scrape(client)
        assert value(first, "servcore_queue_depth", queue="email") == 3
        assert value(first, "servcore_queue_scheduled", queue="email") == 1
        assert value(first, "servcore_stored_jobs", status="available") == 3
        assert value(first, "servcore_stored_jobs", status="scheduled") == 1
        await service.cancel_job(waiting[0].id)
        await service.pause_queue("email")

        async def sampled_again() -> bool:
            samples = await scrape(client)
            return (
                value(samples, "servcore_stored_jobs", status="cancelled") == 1
                and value(samples, "servcore_queue_depth", queue="email") == 2
                and value(samples, "servcore_queue_paused", queue="email") == 1
            )

        await wait_for(sampled_again, message="a new sample after sample_interval")
    finally:
        await client.aclose()
        await service.stop()


async def test_metrics_can_be_switched_off(backend: str, tmp_path: Path) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(metrics=False))
    client = client_for(create_app(service, manage_service=False))
    await service.start(workers=False)
    try:
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert "switched off" in response.json()["error"]
        assert not service.telemetry.listening("job.stop")
    finally:
        await client.aclose()
        await service.stop()


async def test_the_grafana_dashboard_asks_only_for_metrics_that_exist(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = live
    await finished(service, (await service.enqueue("flaky")).id)  # a retry, then a failure
    await client.get("/queues")

    async def queues_sampled() -> bool:
        return any(name == "servcore_queue_depth" for name, _ in await scrape(client))

    await wait_for(queues_sampled, message="the queue sampler's first sample")
    exposed = {name for name, _ in await scrape(client)}
    dashboard = json.loads(DASHBOARD.read_text())
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"servcore_[a-z_]+", target["expr"])
    }
    assert len(dashboard["panels"]) >= 6
    assert asked
    assert asked <= exposed, f"not exposed: {sorted(asked - exposed)}"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for subject in ("throughput", "failures", "percentiles", "queue depth", "per node"):
        assert subject in titles


async def test_tasks_without_a_handler_share_one_label(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = live
    for name in ("made-up-1", "made-up-2"):
        # As a node that knows no tasks stores them (here, they would be refused).
        [job] = await service.submit([service.job_template({"task": name})])
        await finished(service, job.id)
    samples = await scrape(client)
    tasks = {dict(labels).get("task") for name, labels in samples if name == "servcore_jobs_total"}
    assert "(unregistered)" in tasks
    assert not tasks & {"made-up-1", "made-up-2"}
    assert (
        value(
            samples, "servcore_jobs_total", queue="default", task="(unregistered)", outcome="failed"
        )
        == 2
    )


async def test_the_node_label_follows_configure(backend: str, tmp_path: Path) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config())
    service.configure(node="worker-a")
    await service.start()
    try:
        assert service.metrics is not None
        assert b'servcore_jobs_running{node="worker-a",queue="default"}' in (
            service.metrics.render()
        )
    finally:
        await service.stop()
