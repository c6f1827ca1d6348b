"""servcore mounted in a user's app under uvicorn: its log lines appear, with
time, level and logger name, unless the app set logging up itself."""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, spawn

pytestmark = pytest.mark.slow

HOST_APP = """
{logging_setup}
from starlette.applications import Starlette
from starlette.routing import Mount

from servcore import Service, ServiceConfig, create_app

service = Service("sqlite:///jobs.db", config=ServiceConfig(poll_interval=0.1))


@service.task("explode")
async def explode(job):
    raise RuntimeError("kaboom")


app = Starlette(
    routes=[Mount("/queue", app=create_app(service, manage_service=False))],
    lifespan=service.lifespan,
)
"""
STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}"


def run_host_app(tmp_path: Path, logging_setup: str) -> str:
    """Serve the app with uvicorn, submit a job that fails, stop; the output."""
    (tmp_path / "hostapp.py").write_text(HOST_APP.format(logging_setup=logging_setup))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "hostapp:app", "--port", str(port)]
    with spawn(tmp_path, argv, {"PYTHONPATH": str(tmp_path)}, "uvicorn", port) as server:
        server.wait_ready(path="/queue/health")
        body = {"payload": {"task": "explode"}, "max_attempts": 1}
        job_id = httpx.post(f"{server.url}/queue/jobs", json=body).json()["job_id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/queue/jobs/{job_id}").json()["status"] != "failed":
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        # The failure is logged after the store records it: wait for the line.
        while f"Job {job_id} failed" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
    return server.output()


def test_a_host_that_set_no_logging_gets_servcore_s_lines_at_info(tmp_path: Path) -> None:
    output = run_host_app(tmp_path, "")
    started = rf"^{STAMP} INFO servcore.runtime: Worker started: queue default"
    assert re.search(started, output, re.M)
    assert re.search(rf"^{STAMP} INFO servcore.runtime: Executing job 1 \(explode", output, re.M)
    assert re.search(
        rf"^{STAMP} ERROR servcore.runtime: Job 1 failed: RuntimeError: kaboom", output, re.M
    )
    assert "\nJob 1 failed" not in output  # never bare, as Python's last-resort handler prints


def test_a_host_that_set_logging_up_decides_alone(tmp_path: Path) -> None:
    setup = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.WARNING, format="HOST %(levelname)s %(message)s")
        """
    )
    output = run_host_app(tmp_path, setup)
    assert "HOST ERROR Job 1 failed: RuntimeError: kaboom" in output
    assert "Executing job 1" not in output  # INFO is below the host's level
    assert not re.search(rf"^{STAMP} ", output, re.M)
