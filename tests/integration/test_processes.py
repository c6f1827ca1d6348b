"""``servcore serve`` as a real process: logs, SIGTERM, and a kill -9 crash test."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.processes import post_many, servcore_serve

pytestmark = pytest.mark.slow


def wait_until(condition: object, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.02)


def job_status(db: Path, job_id: int) -> tuple[str, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status, attempt FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0], row[1]


def test_serve_logs_the_seed_lines_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    args = ["tests.process_tasks:service", "--store", f"sqlite:///{db}", "--shutdown-grace", "1"]
    with servcore_serve(tmp_path, *args) as server:
        server.wait_ready()
        client = httpx.Client(base_url=server.url)
        quick = client.post("/jobs", json={"payload": {"task": "sleep", "seconds": 0}}).json()
        broken = client.post("/jobs", json={"payload": {"task": "explode"}, "max_attempts": 1})
        long = client.post("/jobs", json={"payload": {"task": "sleep", "seconds": 60}}).json()
        wait_until(
            lambda: client.get(f"/jobs/{long['job_id']}").json()["status"] == "running",
            10,
            "the long job to start",
        )
        wait_until(
            lambda: client.get(f"/jobs/{broken.json()['job_id']}").json()["status"] == "failed",
            10,
            "the exploding job to fail",
        )
        client.close()
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
        # The grace period (1 s) bounded the wait for the 60 s job.
        assert time.monotonic() - started < 8
        output = server.output()
    assert f"Starting server on http://127.0.0.1:{server.port}" in output
    assert "Worker started" in output
    assert f"Executing job {quick['job_id']}" in output
    assert f"Job {quick['job_id']} completed successfully" in output
    assert f"Job {broken.json()['job_id']} failed: RuntimeError: kaboom" in output
    assert "Received SIGTERM" in output
    # The job cut off by shutdown is back in the queue with its attempt unspent.
    assert job_status(db, long["job_id"]) == ("queued", 0)


def test_bad_port_and_bad_store_end_with_one_line_and_non_zero_exit(tmp_path: Path) -> None:
    with servcore_serve(tmp_path, "--store", "sqlite:///jobs.db") as first:
        first.wait_ready()
        with servcore_serve(
            tmp_path, "--store", "sqlite:///other.db", "--port", str(first.port), name="second"
        ) as second:
            assert second.wait_exit(20) == 1
            assert f"cannot listen on 127.0.0.1:{first.port}" in second.output()
    with servcore_serve(tmp_path, "--store", "redis://127.0.0.1/0", name="badstore") as bad:
        assert bad.wait_exit(20) == 1
        lines = [line for line in bad.output().splitlines() if line.strip()]
        assert lines == [
            "Error: unsupported store URL 'redis://127.0.0.1/0': use memory://, "
            "sqlite:///path.db or postgresql://user@host:port/db"
        ]
    # Nothing listens on port 1: an unreachable PostgreSQL is one line too.
    unreachable = "postgresql://root@127.0.0.1:1/test"
    with servcore_serve(tmp_path, "--store", unreachable, name="nopg") as bad:
        assert bad.wait_exit(30) == 1
        lines = [line for line in bad.output().splitlines() if line.strip()]
        assert len(lines) == 1
        assert lines[0].startswith(f"Error: cannot connect to PostgreSQL at {unreachable}")


def submit_all(port: int, count: int) -> list[int]:
    body = msgspec.json.encode({"payload": {"task": "record", "sleep": 0.04}})
    responses = asyncio.run(post_many(port, "/jobs", [body] * count))
    assert all(status == 202 for status, _ in responses), responses[:3]
    return [msgspec.json.decode(answer)["job_id"] for _, answer in responses]


def test_kill_minus_9_loses_no_job_and_reruns_only_running_ones(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    record = tmp_path / "executions.txt"
    record.touch()
    env = {"RECORD_FILE": str(record)}
    args = [
        "tests.process_tasks:service",
        "--store",
        f"sqlite:///{db}",
        "--concurrency",
        "16",
        "--log-level",
        "warning",
    ]
    total = 2000

    with servcore_serve(tmp_path, *args, env=env, name="before") as server:
        server.wait_ready()
        submitting = time.monotonic()
        accepted = submit_all(server.port, total)
        print(f"submitted {total} jobs in {time.monotonic() - submitting:.2f} s")
        assert len(set(accepted)) == total
        executed_before = len(record.read_text().splitlines())
        # Mid-run: every job is accepted, some have run, many have not.
        wait_until(lambda: len(record.read_text().splitlines()) >= 400, 30, "400 executions")
        server.process.kill()
        server.wait_exit(10)
    assert executed_before < total

    with sqlite3.connect(db) as conn:
        running_at_kill = {
            job_id for (job_id,) in conn.execute("SELECT id FROM jobs WHERE status = 'running'")
        }
        stored = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    assert stored == total  # every 202 was durable
    ran_before_kill = Counter(int(line.split()[0]) for line in record.read_text().splitlines())
    assert len(ran_before_kill) < total

    restarted_at = time.monotonic()
    with servcore_serve(tmp_path, *args, env=env, name="after") as server:
        server.wait_ready()

        def all_done() -> bool:
            stats = httpx.get(f"{server.url}/stats").json()
            return bool(stats["done"] == total)

        # Well inside the 30 s lease: the dead node's jobs are rescued at start.
        wait_until(all_done, 25, "every job to be done after the restart")
        recovery = time.monotonic() - restarted_at
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0

    runs = Counter(int(line.split()[0]) for line in record.read_text().splitlines())
    assert set(runs) == set(accepted), "a job never ran"
    twice = {job_id for job_id, count in runs.items() if count > 1}
    assert twice <= running_at_kill, (
        f"ran twice but was not running at the kill: {twice - running_at_kill}"
    )
    assert max(runs.values()) <= 2
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
    assert statuses == {"done": total}
    print(f"recovered in {recovery:.2f} s; {len(twice)} job(s) ran twice")


def test_json_logs_give_one_object_a_line_with_the_job_fields(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    args = ["tests.process_tasks:service", "--store", f"sqlite:///{db}", "--log-format", "json"]
    with servcore_serve(tmp_path, *args, env={"SERVCORE_NODE": "json-node"}) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url) as client:
            job_id = client.post("/jobs", json={"payload": {"task": "noop"}}).json()["job_id"]

            def logged() -> bool:
                return f'"message":"Job {job_id} completed successfully"' in server.output()

            wait_until(logged, 15, "the job's completion to be logged")
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    executing = next(
        line for line in lines if line["message"].startswith(f"Executing job {job_id}")
    )
    assert executing["job_id"] == job_id
    assert (executing["queue"], executing["task"], executing["attempt"]) == ("default", "noop", 1)
    assert executing["node"] == "json-node"
    assert any(line["message"].startswith("Starting server") for line in lines)
