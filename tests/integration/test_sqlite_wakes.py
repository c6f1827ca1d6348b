"""Wake-ups between processes on one SQLite file: what the store tells, when,
and a real ``servcore worker`` woken by other processes long before its poll."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from servcore.notifier.base import cancel_message, finished_message
from servcore.notifier.sqlite import wake_directory
from servcore.store.base import Lease
from servcore.store.sqlite.group_commit import GroupCommitWriter
from servcore.store.sqlite.store import SqliteStore
from tests.conformance.support import T0, at, claim, claim_one, failure, insert, new_job
from tests.conftest import wait_for
from tests.processes import ROOT, SERVCORE, ServerProcess, servcore_worker


class Probe:
    """A socket in the wake directory that counts what it is sent."""

    def __init__(self, database: Path) -> None:
        directory = wake_directory(database)
        directory.mkdir(exist_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(directory / "probe.sock"))
        self.socket.setblocking(False)

    def datagrams(self) -> list[set[str]]:
        """Everything sent since last asked, one set of messages per datagram
        (sent from the writer thread before the write's caller is answered)."""
        received = []
        while True:
            try:
                received.append(set(self.socket.recv(65536).decode().split("\n")))
            except BlockingIOError:
                return received

    def close(self) -> None:
        self.socket.close()


class Heard:
    def __init__(self) -> None:
        self.queues: list[str] = []
        self.cancels: list[tuple[int, int]] = []


@asynccontextmanager
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore, Heard, Probe]]:
    """Two stores on one file, as two processes would have: the first listens."""
    path = tmp_path / "jobs.db"
    listening = SqliteStore(f"sqlite:///{path}", str(path))
    other = SqliteStore(f"sqlite:///{path}", str(path))
    await listening.open()
    await other.open()
    heard = Heard()
    task = asyncio.create_task(
        listening.notifier().run(
            heard.queues.append, lambda job_id, token: heard.cancels.append((job_id, token))
        )
    )
    probe = Probe(path)
    try:
        await wait_for(lambda: heard.queues == [""], within=5, message="the listener bound")
        yield listening, other, heard, probe
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        probe.close()
        await other.close()
        await listening.close()


async def test_a_commit_is_told_once_visible_and_a_rolled_back_write_never(
    tmp_path: Path,
) -> None:
    path = tmp_path / "told.db"
    seen: list[tuple[set[str], int]] = []

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def on_commit(told: set[str]) -> None:
        with sqlite3.connect(path) as reader:  # another connection: what is committed
            seen.append((told, reader.execute("SELECT count(*) FROM t").fetchone()[0]))

    setup = connect()
    setup.execute("CREATE TABLE t (x)")
    setup.close()
    writer = GroupCommitWriter(connect, on_commit=on_commit)
    writer.start()

    def good(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        writer.tell("email")

    def bad(conn: sqlite3.Connection) -> None:
        writer.tell("never")
        raise sqlite3.IntegrityError("this write fails")

    try:
        outcomes = await asyncio.gather(
            writer.submit(good), writer.submit(bad), return_exceptions=True
        )
    finally:
        writer.close()
    assert outcomes[0] is None
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert seen == [({"email"}, 1)]


async def test_jobs_stored_by_one_process_wake_another_with_one_datagram_a_commit(
    tmp_path: Path,
) -> None:
    async with stores(tmp_path) as (_, other, heard, probe):
        await asyncio.gather(
            *(insert(other, new_job("email" if n % 2 else "media")) for n in range(50))
        )
        assert probe.datagrams() == [{"email", "media"}]
        await wait_for(
            lambda: {"email", "media"} <= set(heard.queues), within=5, message="the queues"
        )


async def test_a_store_does_not_wake_its_own_listener(tmp_path: Path) -> None:
    async with stores(tmp_path) as (listening, _, heard, probe):
        await insert(listening, new_job("email"))
        assert probe.datagrams() == [{"email"}]
        await asyncio.sleep(0.05)  # give a datagram that should not come the time to arrive
        assert heard.queues == [""]


async def test_a_running_job_cancelled_elsewhere_is_told_with_its_lease_token(
    tmp_path: Path,
) -> None:
    async with stores(tmp_path) as (listening, other, heard, probe):
        await insert(listening, new_job())
        running = await claim_one(listening)
        (waiting,) = await insert(listening, new_job())
        probe.datagrams()
        assert sorted(await other.cancel_jobs([running.id, waiting.id], T0)) == sorted(
            [running.id, waiting.id]
        )
        # Only the running one has a run to stop; both finished.
        assert probe.datagrams() == [
            {
                cancel_message(running.id, running.lease_token),
                finished_message(running.id),
                finished_message(waiting.id),
            }
        ]
        await wait_for(
            lambda: heard.cancels == [(running.id, running.lease_token)],
            within=5,
            message="the cancel",
        )


async def test_every_write_that_lets_jobs_start_tells_their_queue(tmp_path: Path) -> None:
    async with stores(tmp_path) as (listening, other, _, probe):

        async def told(write: Callable[[], object]) -> list[set[str]]:
            probe.datagrams()
            outcome = write()
            if asyncio.iscoroutine(outcome):
                await outcome
            return probe.datagrams()

        await insert(listening, new_job("email"))
        failed = await claim_one(listening, "email")
        await listening.fail_jobs([failure(failed)])
        assert await told(lambda: other.retry_jobs([failed.id], T0)) == [{"email"}]

        assert await told(lambda: other.set_paused("email", True)) == []
        assert await told(lambda: other.set_paused("email", False)) == [{"email"}]

        job = await claim_one(listening, "email")
        assert await told(lambda: other.release_jobs([Lease(job.id, job.lease_token)])) == [
            {"email"}
        ]

        await claim(other, "email", node="gone")  # a lease that runs out
        assert await told(lambda: other.rescue_expired_leases(at(3600), 3)) == [{"email"}]

        unique = new_job("media", unique_key="k")
        assert await told(lambda: other.insert_unique(unique, T0, at(-60))) == [{"media"}]
        assert await told(lambda: other.insert_unique(unique, T0, at(-60))) == []

        assert await told(lambda: other.advance_cron("c", T0, new_job("cron"), T0)) == [{"cron"}]
        assert await told(lambda: other.advance_cron("c", T0, new_job("cron"), T0)) == []


# -- real processes -------------------------------------------------------------

POLL_S = 30.0
# Well under the poll, and under lease / 3 (the renewal that would notice a cancel).
PROMPT_S = 5.0


def _row(db: Path, job_id: int) -> tuple[str, int | None, int]:
    with sqlite3.connect(db) as conn:
        status, started_at, inserted_at = conn.execute(
            "SELECT status, started_at, inserted_at FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    return status, started_at, inserted_at


def _wait_status(db: Path, job_id: int, status: str, within: float, worker: ServerProcess) -> None:
    deadline = time.monotonic() + within
    while _row(db, job_id)[0] != status:
        assert worker.process.poll() is None, worker.output()
        assert time.monotonic() < deadline, f"job {job_id} not {status} within {within} s"
        time.sleep(0.02)


def _cli(tmp_path: Path, *args: str) -> dict[str, object]:
    ran = subprocess.run(
        [str(SERVCORE), *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    found: dict[str, object] = json.loads(ran.stdout)
    return found


@pytest.mark.slow
def test_an_idle_worker_starts_jobs_from_other_processes_long_before_its_poll(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    url = f"sqlite:///{db}"
    (tmp_path / "servcore.toml").write_text(
        f'poll_interval = {POLL_S}\nlease = 120\nconcurrency = 1\nstore = "{url}"\n'
    )
    _cli(tmp_path, "enqueue", "warm-up")  # the schema, before the worker (store: the file's)
    with servcore_worker(tmp_path, "tests.process_tasks:service") as worker:
        _wait_status(db, 1, "done", 20, worker)
        wake_dir = wake_directory(db)
        deadline = time.monotonic() + 20
        while not any(name.endswith(".sock") for name in os.listdir(wake_dir)):
            assert time.monotonic() < deadline, f"the worker never listened:\n{worker.output()}"
            time.sleep(0.02)

        # An app that only enqueues, with Service(...).
        app = textwrap.dedent(
            f"""
            import asyncio
            from servcore import Service

            async def main():
                service = Service({url!r})
                await service.start(workers=False)
                job = await service.enqueue("hello", {{"from": "app"}})
                print(job.id)
                await service.stop()

            asyncio.run(main())
            """
        )
        ran = subprocess.run(
            [sys.executable, "-c", app],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        from_app = int(ran.stdout)
        _wait_status(db, from_app, "done", PROMPT_S, worker)
        _, started_at, inserted_at = _row(db, from_app)
        assert started_at is not None
        assert (started_at - inserted_at) / 1e6 < PROMPT_S

        # `servcore enqueue`.
        from_cli = int(str(_cli(tmp_path, "enqueue", "hello")["id"]))
        _wait_status(db, from_cli, "done", PROMPT_S, worker)

        # A running job cancelled by another process stops at once: with one
        # slot, the next job can start only once the run is stopped.
        sleeping = _cli(tmp_path, "enqueue", "sleep", "--payload", '{"seconds": 60}')
        long = int(str(sleeping["id"]))
        _wait_status(db, long, "running", PROMPT_S, worker)
        _cli(tmp_path, "jobs", "cancel", str(long))
        after = int(str(_cli(tmp_path, "enqueue", "hello")["id"]))
        _wait_status(db, after, "done", PROMPT_S, worker)
        assert _row(db, long)[0] == "cancelled"
