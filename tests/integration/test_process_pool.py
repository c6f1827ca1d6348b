"""The process pool: outcomes cross back as data, and timeouts really kill the work."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from servcore import Job, JobStatus
from servcore.runtime.processes import WORKER_NAME, ProcessPool, ProcessTaskError
from tests import process_pool_tasks as tasks
from tests.conftest import wait_for
from tests.processes import is_gone


def make_job(job_id: int = 1, **payload: Any) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=job_id,
        queue="default",
        task="cpu",
        payload=payload,
        status=JobStatus.RUNNING,
        priority=0,
        attempt=1,
        max_attempts=3,
        run_at=now,
        inserted_at=now,
    )


async def announced_pid(path: Path) -> int:
    await wait_for(path.exists, message=f"{path.name} to be written")
    return read_pid(path)


def read_pid(path: Path) -> int:
    return int(path.read_text())


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    opened = ProcessPool(2)
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_handler_value_comes_back_as_json(pool: ProcessPool) -> None:
    result = await pool.run(tasks.echo, make_job(n=[1, 2], text="hi"), timeout=None)
    assert result.kind == "value"
    assert result.value["payload"] == {"n": [1, 2], "text": "hi"}
    assert result.value["name"] == WORKER_NAME
    assert result.value["pid"] != os.getpid()
    assert result.message == ""
    assert result.traceback is None


async def test_a_worker_is_reused_for_the_next_job(pool: ProcessPool) -> None:
    first = await pool.run(tasks.echo, make_job(1), timeout=5)
    second = await pool.run(tasks.echo, make_job(2), timeout=5)
    assert first.value["pid"] == second.value["pid"]
    assert pool.alive == 1


@pytest.mark.parametrize(
    ("handler", "kind", "message", "retry_after"),
    [
        (tasks.retry, "retry", "not yet", 2.5),
        (tasks.discard, "discard", "bad job", None),
        (tasks.cancel, "cancel", "no longer wanted", None),
        (tasks.fail, "error", "ValueError: cannot handle job 7", None),
        (tasks.fail_silently, "error", "RuntimeError", None),
    ],
)
async def test_exceptions_are_classified(
    pool: ProcessPool, handler: Any, kind: str, message: str, retry_after: float | None
) -> None:
    result = await pool.run(handler, make_job(7), timeout=5)
    assert (result.kind, result.message, result.retry_after) == (kind, message, retry_after)
    if kind == "error":
        assert result.traceback is not None
        assert f"in {handler.__name__}" in result.traceback
    else:
        assert result.traceback is None
    assert pool.alive == 1  # a handler's exception costs no process


async def test_a_value_that_is_not_json_is_unserialisable(pool: ProcessPool) -> None:
    result = await pool.run(tasks.unserialisable, make_job(), timeout=5)
    assert result.kind == "unserialisable"
    assert "complex" in result.message
    assert result.value is None


async def test_a_timeout_kills_the_spinning_worker(pool: ProcessPool, tmp_path: Path) -> None:
    await pool.run(tasks.echo, make_job(), timeout=None)  # warm up: no start-up in the timeout
    pid_file = tmp_path / "spin.pid"
    running = asyncio.create_task(pool.run(tasks.spin, make_job(pid_file=str(pid_file)), 0.5))
    pid = await announced_pid(pid_file)
    assert not is_gone(pid)
    result = await running
    assert result.kind == "timeout"
    assert result.message == "timed out after 0.5 s"
    assert is_gone(pid)
    assert pool.alive == 0  # no replacement until one is needed
    again = await pool.run(tasks.echo, make_job(), timeout=5)
    assert again.kind == "value"
    assert again.value["pid"] != pid


async def test_cancelling_the_run_kills_the_worker(pool: ProcessPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "block.pid"
    running = asyncio.create_task(pool.run(tasks.block, make_job(pid_file=str(pid_file)), None))
    pid = await announced_pid(pid_file)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # Killed at once; reaped in the background (a large process takes a while).
    await wait_for(lambda: is_gone(pid), message="the killed worker to be gone")
    assert pool.alive == 0
    again = await pool.run(tasks.echo, make_job(), timeout=5)
    assert again.kind == "value"
    assert again.value["pid"] != pid


async def test_a_run_cancelled_while_waiting_gives_up_its_place(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    try:
        pid_file = tmp_path / "block.pid"
        busy = asyncio.create_task(pool.run(tasks.block, make_job(pid_file=str(pid_file)), 5))
        await announced_pid(pid_file)
        waiting = asyncio.create_task(pool.run(tasks.echo, make_job(2), 5))
        queued = [asyncio.create_task(pool.run(tasks.echo, make_job(i), 5)) for i in (3, 4)]
        await wait_for(lambda: pool.waiting == 3, message="three runs waiting")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.waiting == 2
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        results = await asyncio.gather(*queued)
        assert [r.kind for r in results] == ["value", "value"]
        assert pool.waiting == 0
        assert pool.alive == 1
    finally:
        await pool.close()


async def test_waiting_runs_are_served_in_order(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    finished: list[int] = []

    async def run(job_id: int) -> None:
        await pool.run(tasks.echo, make_job(job_id), timeout=5)
        finished.append(job_id)

    try:
        await asyncio.gather(*(run(i) for i in range(6)))
    finally:
        await pool.close()
    assert finished == list(range(6))


async def test_a_worker_that_exits_is_reported_as_crashed(pool: ProcessPool) -> None:
    result = await pool.run(tasks.exit_3, make_job(), timeout=5)
    assert result.kind == "crashed"
    assert result.message == "worker process exited with code 3"
    killed = await pool.run(tasks.kill_self, make_job(), timeout=5)
    assert killed.kind == "crashed"
    assert killed.message == "worker process exited with code -9 (SIGKILL)"
    assert pool.alive == 0
    assert (await pool.run(tasks.echo, make_job(), timeout=5)).kind == "value"


async def test_two_jobs_run_at_once_in_two_processes(pool: ProcessPool, tmp_path: Path) -> None:
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    results = await asyncio.gather(
        pool.run(tasks.rendezvous, make_job(1, pid_file=str(a), other_pid_file=str(b)), 15),
        pool.run(tasks.rendezvous, make_job(2, pid_file=str(b), other_pid_file=str(a)), 15),
    )
    assert [r.kind for r in results] == ["value", "value"]
    assert results[0].value != results[1].value
    assert pool.alive == 2


async def test_handlers_that_cannot_cross_are_refused(pool: ProcessPool) -> None:
    with pytest.raises(ProcessTaskError, match="handler must be a module-level function"):
        await pool.run(lambda job: job.id, make_job(), timeout=5)

    def local(job: Job) -> int:
        return job.id

    with pytest.raises(ProcessTaskError, match="handler must be a module-level function"):
        await pool.run(local, make_job(), timeout=5)

    async def coroutine(job: Job) -> int:
        return job.id

    with pytest.raises(ProcessTaskError, match="not async"):
        await pool.run(coroutine, make_job(), timeout=5)
    assert pool.alive == 0  # nothing was started, nothing was killed


async def test_close_leaves_no_live_worker(tmp_path: Path) -> None:
    pool = ProcessPool(2)
    pid_file = tmp_path / "block.pid"
    busy = asyncio.create_task(pool.run(tasks.block, make_job(pid_file=str(pid_file)), None))
    busy_pid = await announced_pid(pid_file)
    idle = await pool.run(tasks.echo, make_job(), timeout=5)  # starts a second worker
    pids = [busy_pid, idle.value["pid"]]
    assert pool.alive == 2
    await pool.close()
    await pool.close()  # idempotent
    assert pool.alive == 0
    assert all(is_gone(pid) for pid in pids)
    result = await busy
    assert result.kind == "crashed"
    assert "the process pool was closed" in result.message
    assert not [p for p in multiprocessing.active_children() if p.name == WORKER_NAME]
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(tasks.echo, make_job(), timeout=5)


async def test_close_fails_runs_still_waiting_for_a_worker(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    pid_file = tmp_path / "block.pid"
    busy = asyncio.create_task(pool.run(tasks.block, make_job(pid_file=str(pid_file)), None))
    await announced_pid(pid_file)
    waiting = asyncio.create_task(pool.run(tasks.echo, make_job(2), 5))
    await wait_for(lambda: pool.waiting == 1, message="a run waiting")
    await pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        await waiting
    assert (await busy).kind == "crashed"
    assert pool.alive == 0


async def test_the_forkserver_start_method_works_too() -> None:
    pool = ProcessPool(1, start_method="forkserver")
    try:
        result = await pool.run(tasks.echo, make_job(n=1), timeout=10)
    finally:
        await pool.close()
    assert result.kind == "value"
    assert result.value["payload"] == {"n": 1}


def test_fork_and_empty_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="spawn"):
        ProcessPool(1, start_method="fork")
    with pytest.raises(ValueError, match="size"):
        ProcessPool(0)


ORPHAN_SCRIPT = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from servcore import Job, JobStatus
from servcore.runtime.processes import ProcessPool
from tests import process_pool_tasks as tasks

async def main(pid_file):
    now = datetime.now(UTC)
    job = Job(id=1, queue="q", task="spin", payload={"pid_file": pid_file},
              status=JobStatus.RUNNING, priority=0, attempt=1, max_attempts=1,
              run_at=now, inserted_at=now)
    asyncio.ensure_future(ProcessPool(1).run(tasks.spin, job, None))
    while not os.path.exists(pid_file):
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)  # the service dies mid-job

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""


def test_a_busy_worker_dies_with_its_crashed_parent(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    pid_file = tmp_path / "spin.pid"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'src'}"}
    parent = subprocess.run(
        [sys.executable, str(script), str(pid_file)], env=env, timeout=60, check=False
    )
    assert parent.returncode == -signal.SIGKILL
    worker = read_pid(pid_file)
    deadline = time.monotonic() + 10
    while not is_gone(worker):  # no sleeping as synchronisation: a deadline
        assert time.monotonic() < deadline, f"worker {worker} outlived its parent"
        time.sleep(0.01)
