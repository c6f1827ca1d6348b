"""Every node's /metrics shows the cluster: an API-only node (``serve
--no-workers``) and a worker process on one SQLite file, as real processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import free_port, servcore_serve, servcore_worker

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TASKS = "tests.process_tasks:service"


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.05)


def test_an_api_node_exports_the_queues_and_job_totals_a_worker_changes(tmp_path: Path) -> None:
    (tmp_path / "servcore.toml").write_text("sample_interval = 0.2\n")
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = {"RECORD_FILE": str(tmp_path / "runs.txt")}
    with servcore_serve(
        tmp_path, TASKS, "--store", store, "--no-workers", "--node", "api", env=env, name="api"
    ) as api:
        api.wait_ready()
        client = httpx.Client(base_url=api.url)
        for _ in range(4):
            assert client.post("/jobs", json={"payload": {"task": "record"}}).status_code == 202
        client.post("/jobs", json={"payload": {"task": "explode"}, "max_attempts": 1})
        later = client.post("/jobs", json={"payload": {"task": "record"}, "delay": 3600}).json()

        def api_sees(name: str, expected: float, **labels: str) -> Callable[[], bool]:
            return lambda: value(scrape(api.url), name, **labels) == expected

        # No worker anywhere yet: the API node reads the store's view.
        wait_until(api_sees("servcore_queue_depth", 5, queue="default"), 10, "depth 5")
        before = scrape(api.url)
        assert value(before, "servcore_queue_scheduled", queue="default") == 1
        assert value(before, "servcore_stored_jobs", status="available") == 5
        assert value(before, "servcore_stored_jobs", status="done") == 0
        assert client.post(f"/jobs/{later['job_id']}/cancel").status_code == 200

        metrics_port = free_port()
        worker_args = [TASKS, "--store", store, "--node", "w1", "--metrics-port", str(metrics_port)]
        with servcore_worker(tmp_path, *worker_args, env=env, name="w1") as worker:
            wait_until(api_sees("servcore_stored_jobs", 4, status="done"), 20, "4 jobs done")
            wait_until(api_sees("servcore_queue_depth", 0, queue="default"), 10, "depth 0")
            after = scrape(api.url)
            assert value(after, "servcore_stored_jobs", status="failed") == 1
            assert value(after, "servcore_stored_jobs", status="cancelled") == 1
            assert value(after, "servcore_queue_scheduled", queue="default") == 0
            # Per process: the API node ran nothing, the worker ran every job.
            assert not any(
                name == "servcore_jobs_total" and value > 0 for (name, _), value in after.items()
            )
            worker_url = f"http://127.0.0.1:{metrics_port}"
            wait_until(lambda: _answers(worker_url), 10, "the worker's metrics port")
            on_worker = scrape(worker_url)
            assert (
                value(
                    on_worker, "servcore_jobs_total", queue="default", task="record", outcome="done"
                )
                == 4
            )
            # Cluster-wide: the same on the worker as on the API node.
            assert value(on_worker, "servcore_stored_jobs", status="done") == 4
            assert value(on_worker, "servcore_queue_depth", queue="default") == 0
            assert worker.process.poll() is None
        client.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/metrics", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
