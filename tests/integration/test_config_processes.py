"""``servcore serve`` configured by a servcore.toml in its directory, as a user would."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, servcore_serve, servcore_worker

pytestmark = pytest.mark.slow

CONFIG = """
store = "sqlite:///main.db"
tasks = ["tests.pipeline_tasks:tasks"]

[pipelines.email]
concurrency = 7
routes = "/email_jobs"

[pipelines.media]
concurrency = 2
handler = "tests.pipeline_tasks:transcode"
store = "sqlite:///media.db"
routes = "/media_jobs"

[[cron]]
expression = "0 3 * * *"
task = "send_email"
queue = "email"
timezone = "Europe/Berlin"
"""


def wait_status(client: httpx.Client, path: str, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        job: dict[str, object] = client.get(path).json()
        if job.get("status") == status:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} is {job.get('status')}, not {status}")
        time.sleep(0.02)


def test_serve_runs_the_pipelines_and_cron_of_its_config_file(tmp_path: Path) -> None:
    (tmp_path / "servcore.toml").write_text(CONFIG)
    env = {"SERVCORE_QUEUE_CONCURRENCY": "email=4"}  # the environment overrides the file
    with servcore_serve(tmp_path, env=env) as server:
        server.wait_ready()
        assert "Configuration from" in server.output()
        with httpx.Client(base_url=server.url) as client:
            accepted = client.post(
                "/email_jobs", json={"payload": {"task": "send_email", "to": "x"}}
            )
            assert accepted.status_code == 202, accepted.text
            email = wait_status(client, f"/email_jobs/{accepted.json()['job_id']}", "done")
            assert email["result"] == {"sent_to": "x"}

            accepted = client.post("/media_jobs", json={"payload": {"file": "c.mp4"}})
            media = wait_status(client, f"/media_jobs/{accepted.json()['job_id']}", "done")
            assert media["result"] == {"transcoded": "c.mp4", "queue": "media"}

            queues = {q["name"]: q["concurrency"] for q in client.get("/queues").json()}
            assert queues["email"] == 4
            assert queues["media"] == 2
            (entry,) = client.get("/cron").json()
            assert (entry["task"], entry["timezone"]) == ("send_email", "Europe/Berlin")
    assert (tmp_path / "media.db").exists()


def test_a_broken_config_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "servcore.toml").write_text("[pipelines.email]\nthreads = 4\n")
    with servcore_serve(tmp_path) as server:
        assert server.wait_exit() == 1
        output = server.output()
    assert "servcore.toml: pipelines.email: unknown key(s) threads" in output
    assert "Traceback" not in output


def test_a_worker_serves_its_metrics_on_the_metrics_port(tmp_path: Path) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    with servcore_worker(tmp_path, "--store", store, "--metrics-port", str(port)) as worker:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.TransportError:
                assert worker.process.poll() is None, worker.output()
                assert time.monotonic() < deadline, "metrics port never answered"
                time.sleep(0.05)
        assert response.status_code == 200
        assert "servcore_jobs_running" in response.text
        assert "Metrics on http://127.0.0.1:" in worker.output()
