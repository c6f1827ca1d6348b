"""enqueue_sync: submitting from code that is not async, on every store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from servcore import Service
from servcore.jobs import JobStatus
from servcore.store.sqlite import SqliteStore
from tests.conftest import fast_config, make_store, wait_for


def test_a_plain_script_enqueues_without_starting_anything(backend: str, tmp_path: Path) -> None:
    # No event loop here: the store is opened on a loop thread of the service's own.
    service = Service(make_store(backend, tmp_path), config=fast_config())
    first = service.enqueue_sync("send", {"to": "a@example.com"}, priority=3)
    second = service.enqueue_sync("send", {"to": "b@example.com"}, unique_key="b")
    again = service.enqueue_sync("send", {"to": "b@example.com"}, unique_key="b")

    assert (first.task, first.priority, first.payload["to"]) == ("send", 3, "a@example.com")
    assert second.id > first.id
    assert again.id == second.id  # unique keys hold here too
    assert service.loop is not None

    async def read() -> list[JobStatus]:
        return [(await service.store.get_job(j.id)).status for j in (first, second)]  # type: ignore[union-attr]

    assert service._loop_thread.run(read(), service.loop) == [JobStatus.QUEUED] * 2
    service._loop_thread.run(service.stop(), service.loop)


async def test_a_thread_of_a_running_service_enqueues_and_wakes_its_workers(
    backend: str, tmp_path: Path
) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(poll_interval=30))
    ran: list[int] = []

    @service.task("work")
    async def work(job: object) -> None:
        ran.append(job.id)  # type: ignore[attr-defined]

    await service.start()
    try:
        # As a sync route of an async web framework would, from its thread pool.
        job = await asyncio.to_thread(service.enqueue_sync, "work", {})
        await wait_for(lambda: job.id in ran, within=5, message="the job run well before the poll")
    finally:
        await service.stop(grace=0)


async def test_on_the_services_own_loop_it_says_to_await_enqueue(tmp_path: Path) -> None:
    service = Service(make_store("memory", tmp_path), config=fast_config())
    await service.start(workers=False)
    try:
        with pytest.raises(RuntimeError, match="await enqueue"):
            service.enqueue_sync("work", {})  # it would wait for this loop forever
    finally:
        await service.stop()


def test_threads_enqueue_at_once(tmp_path: Path) -> None:
    service = Service(make_store("sqlite", tmp_path), config=fast_config())
    ids: list[int] = []
    lock = threading.Lock()

    def submit() -> None:
        for _ in range(25):
            job = service.enqueue_sync("work", {})
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 100
    assert service.loop is not None
    counts = service._loop_thread.run(service.count_jobs(), service.loop)
    assert counts.queued == 100
    service._loop_thread.run(service.stop(), service.loop)


def test_stopping_closes_the_callers_connections(tmp_path: Path) -> None:
    store = make_store("sqlite", tmp_path)
    assert isinstance(store, SqliteStore)
    service = Service(store, config=fast_config())
    service.enqueue_sync("work", {})
    assert service.loop is not None
    mine = store._caller_writer()  # this thread's, made by the call above
    service._loop_thread.run(service.stop(), service.loop)

    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")
    # The next call opens the store again, with a new connection of this thread's.
    assert service.enqueue_sync("work", {}).id == 2
    service._loop_thread.run(service.stop(), service.loop)


def test_on_sqlite_a_job_is_committed_when_enqueue_sync_returns(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    service = Service(SqliteStore(f"sqlite:///{path}", str(path)), config=fast_config())
    try:
        for n in range(1, 4):
            service.enqueue_sync("send", {"n": n})
            # Another connection sees only what is committed.
            other = sqlite3.connect(path)
            try:
                assert other.execute("SELECT count(*) FROM jobs").fetchone() == (n,)
            finally:
                other.close()
    finally:
        assert service.loop is not None
        service._loop_thread.run(service.stop(), service.loop)
