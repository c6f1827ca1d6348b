"""The SQLite store's own promises: durability, migrations, query plans, group commit.

Behaviour every backend shares lives in ``tests/conformance``; this file holds
what only a file-backed, single-writer store can show.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from servcore.job_reads import JobQuery
from servcore.jobs import JobStatus
from servcore.store import SqliteStore, StoreError, store_from_url
from servcore.store.base import ClaimParams
from servcore.store.sqlite import schema as sqlite_schema
from servcore.store.sqlite.rows import to_micros
from servcore.store.sqlite.schema import SCHEMA_VERSION
from servcore.store.sqlite.store import _CLAIM
from tests.conformance.support import (
    LEASE,
    T0,
    at,
    claim,
    claim_one,
    completion,
    failure,
    fetch,
    insert,
    new_job,
)


class TracedSqliteStore(SqliteStore):
    """A SQLite store that records every statement its writer connections run."""

    def __init__(self, path: Path) -> None:
        self.statements: list[str] = []
        super().__init__(f"sqlite:///{path}", str(path))

    def _connect_writer(self) -> sqlite3.Connection:
        conn = super()._connect_writer()
        conn.set_trace_callback(self.statements.append)
        return conn

    def count(self, statement: str) -> int:
        return sum(1 for seen in self.statements if seen.strip().upper() == statement)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
async def traced(db_path: Path) -> AsyncIterator[TracedSqliteStore]:
    store = TracedSqliteStore(db_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def read_file(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    first = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await first.open()
    jobs = await insert(
        first,
        new_job(payload={"nested": {"text": "ünïcode ✓"}}),
        new_job(),
        new_job(),
        new_job(run_at=at(600)),
    )
    done, failed, running = await claim(first)
    await first.complete_jobs([completion(done, result={"answer": 42})])
    await first.fail_jobs([failure(failed, retry_at=at(60), traceback="tb")])
    before = [await fetch(first, job.id) for job in jobs]
    await first.close()

    second = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await second.open()
    try:
        assert [await second.get_job(job.id) for job in jobs] == before
        assert (await fetch(second, done.id)).result == {"answer": 42}
        assert (await fetch(second, running.id)).status is JobStatus.RUNNING
        assert (await second.list_jobs(JobQuery(), T0)).total == 4
        [later] = await insert(second, new_job(), now=at(1))
        assert later.id > max(job.id for job in jobs)
    finally:
        await second.close()


async def test_schema_version_is_recorded_and_a_second_open_does_not_migrate(
    db_path: Path,
) -> None:
    first = TracedSqliteStore(db_path)
    await first.open()
    [job] = await insert(first, new_job())
    await first.close()
    assert any("CREATE TABLE jobs" in statement for statement in first.statements)
    version = "SELECT value FROM servcore_meta WHERE key = 'schema_version'"
    assert read_file(db_path, version) == [(str(SCHEMA_VERSION),)]

    second = TracedSqliteStore(db_path)
    await second.open()
    try:
        assert await second.get_job(job.id) == job
    finally:
        await second.close()

    assert not any(
        statement.lstrip().upper().startswith(("CREATE TABLE JOBS", "CREATE INDEX"))
        for statement in second.statements
    )
    assert read_file(db_path, version) == [(str(SCHEMA_VERSION),)]


async def test_a_file_from_a_newer_servcore_is_refused(db_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute(
            "UPDATE servcore_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
        conn.commit()

    again = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    with pytest.raises(StoreError, match="newer"):
        await again.open()


async def test_the_claim_query_reads_the_ready_index_even_after_analyze(
    traced: TracedSqliteStore, db_path: Path
) -> None:
    # Skew the statistics: many finished jobs, few ready ones, several queues.
    await insert(traced, *(new_job() for _ in range(400)))
    finished = await claim(traced, limit=1000)
    assert await traced.complete_jobs([completion(job) for job in finished]) == []
    ready = await insert(traced, *(new_job(priority=index % 3) for index in range(5)))
    await insert(traced, *(new_job(f"queue-{index % 7}") for index in range(200)))
    await insert(traced, *(new_job(run_at=at(3600)) for _ in range(50)))
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("ANALYZE")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
        params = {
            "queue": "default",
            "limit": 10,
            "node": "n",
            "now": to_micros(T0),
            "until": to_micros(T0 + LEASE),
        }
        plan = conn.execute(f"EXPLAIN QUERY PLAN {_CLAIM}", params).fetchall()

    details = [str(row[-1]) for row in plan]
    assert any("jobs_ready" in detail for detail in details), details
    assert not any(detail.startswith("SCAN jobs") for detail in details), details
    claimed = await claim(traced, now=at(1))
    assert [job.id for job in claimed] == [
        job.id for job in sorted(ready, key=lambda job: (job.priority, job.id))
    ]


async def test_concurrent_inserts_get_distinct_ids_in_few_commits(
    traced: TracedSqliteStore,
) -> None:
    gate = threading.Event()
    # Hold the writer inside a transaction while the 200 callers queue up.
    held = traced._writer.submit(lambda conn: gate.wait(timeout=10))

    async def open_gate() -> None:
        # Tasks start in the order they were made: by now every insert has submitted.
        gate.set()

    commits_before = traced.count("COMMIT")
    inserts = asyncio.gather(
        *(traced.insert_jobs([new_job(payload={"n": n})], T0) for n in range(200))
    )
    opener = asyncio.ensure_future(open_gate())
    batches = await inserts
    await opener
    assert await held is True

    jobs = [job for batch in batches for job in batch]
    assert [job.payload["n"] for job in jobs] == list(range(200))
    assert len({job.id for job in jobs}) == 200
    commits = traced.count("COMMIT") - commits_before
    assert 1 <= commits <= 2, f"200 inserts took {commits} commits"
    page = await traced.list_jobs(JobQuery(limit=500), T0)
    assert sorted(job.id for job in page.jobs) == sorted(job.id for job in jobs)


async def test_the_writer_recovers_after_its_connection_breaks(
    traced: TracedSqliteStore,
) -> None:
    [before] = await insert(traced, new_job())

    broken = traced._writer.submit(lambda conn: conn.close())
    with pytest.raises(sqlite3.Error):
        await broken

    [after] = await asyncio.wait_for(insert(traced, new_job(), now=at(1)), timeout=15)
    assert after.id > before.id
    assert traced.problem() is None
    assert traced._writer.restarts == 1
    running = await asyncio.wait_for(claim_one(traced, now=at(2)), timeout=15)
    assert running.id == before.id
    assert await fetch(traced, after.id) == after


async def test_jobs_of_a_node_that_is_gone_are_rescued_before_their_lease_ends(
    traced: TracedSqliteStore,
) -> None:
    await insert(traced, new_job(), new_job())
    [alive] = await claim(traced, limit=1, node="alive-node")
    # "ghost-node" never announced itself, so no live process holds its lock.
    [ghost] = await traced.claim_jobs(ClaimParams("default", 1, "ghost-node", T0, T0 + LEASE))

    report = await traced.rescue_expired_leases(at(1), max_rescues=5)

    assert report.requeued == [ghost.id]
    assert (await fetch(traced, alive.id)).status is JobStatus.RUNNING
    assert "ghost-node" in (await fetch(traced, ghost.id)).errors[0].error


@pytest.mark.parametrize(
    "url",
    [
        "",
        "redis://localhost:6379/0",
        "sqlite://somehost/jobs.db",
        "sqlite:///jobs.db?synchronous=SOMETIMES",
        "sqlite:///jobs.db?cache=shared",
        "sqlite:///",
        "sqlite:///:memory:",
        "memory://?size=10",
    ],
)
def test_a_bad_store_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError):
        store_from_url(url)


async def test_an_unusable_path_fails_to_open_with_a_store_error(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("I am a file")
    not_a_database = tmp_path / "garbage.db"
    not_a_database.write_bytes(b"this is not a SQLite database file" * 100)
    a_directory = tmp_path / "a-directory.db"
    a_directory.mkdir()

    for path in (not_a_directory / "jobs.db", not_a_database, a_directory):
        store = store_from_url(f"sqlite:///{path}")
        with pytest.raises(StoreError, match="cannot open"):
            await store.open()
        with pytest.raises(StoreError):
            await store.get_job(1)


async def test_a_closed_store_refuses_reads_and_writes(db_path: Path) -> None:
    store = store_from_url(f"sqlite:///{db_path}?synchronous=NORMAL")
    await store.open()
    await insert(store, new_job())
    await store.close()

    with pytest.raises(StoreError):
        await insert(store, new_job())
    with pytest.raises(StoreError):
        await store.get_job(1)


async def test_a_version_4_file_is_brought_forward_with_its_jobs(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE servcore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for version in range(1, 5):
        steps = sqlite_schema._MIGRATIONS[version]
        assert isinstance(steps, str)
        conn.executescript(steps)
    conn.execute("INSERT INTO servcore_meta VALUES ('schema_version', '4')")
    conn.execute(
        "INSERT INTO jobs (queue, task, payload, status, max_attempts, run_at, inserted_at) "
        "VALUES ('default', 'old', '{\"task\": \"old\"}', 'queued', 3, 0, 0)"
    )
    conn.commit()
    conn.close()

    store = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await store.open()
    try:
        old = await store.get_job(1)
        assert old is not None
        assert (old.task, old.result_ttl) == ("old", None)
        [fresh] = await insert(store, new_job(result_ttl=5))
        assert (await store.get_job(fresh.id)) == fresh
        assert fresh.result_ttl == 5
    finally:
        await store.close()
    version = "SELECT value FROM servcore_meta WHERE key = 'schema_version'"
    assert read_file(db_path, version) == [(str(SCHEMA_VERSION),)]


async def test_a_version_6_file_gets_counts_of_the_finished_jobs_it_holds(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_schema, "SCHEMA_VERSION", 6)
        sqlite_schema.migrate(conn)
    for queue, status in [("a", "done"), ("a", "done"), ("a", "failed"), ("b", "cancelled")]:
        conn.execute(
            "INSERT INTO jobs (queue, task, payload, status, max_attempts, run_at, inserted_at, "
            "finished_at) VALUES (?, 'old', '{}', ?, 3, 0, 0, 0)",
            (queue, status),
        )
    conn.commit()
    conn.close()

    store = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await store.open()
    try:
        tallies = {info.name: info for info in await store.list_queues(datetime.now(UTC))}
        assert (tallies["a"].done, tallies["a"].failed, tallies["b"].cancelled) == (2, 1, 1)
    finally:
        await store.close()
    assert read_file(db_path, "SELECT name FROM sqlite_master WHERE name = 'jobs_status'") == []


async def test_a_version_8_file_gains_the_leader_lease_and_keeps_its_running_jobs(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_schema, "SCHEMA_VERSION", 8)
        sqlite_schema.migrate(conn)
    conn.execute(
        "INSERT INTO jobs (queue, task, payload, status, max_attempts, run_at, inserted_at, "
        "attempt, started_at, locked_by, locked_until, lease_token) "
        "VALUES ('default', 'old', '{\"task\": \"old\"}', 'running', 3, 0, 0, 1, 0, 'n1', 0, 1)"
    )
    leader_table = "SELECT name FROM sqlite_master WHERE name = 'servcore_leader'"
    assert conn.execute(leader_table).fetchall() == []
    conn.close()

    store = SqliteStore(f"sqlite:///{db_path}", str(db_path))
    await store.open()
    try:
        old = await store.get_job(1)
        assert old is not None
        assert (old.status, old.locked_by, old.attempt) == (JobStatus.RUNNING, "n1", 1)
        term = await store.seek_leadership("n1", T0, T0 + LEASE)
        assert term is not None
        assert await store.seek_leadership("n2", T0, T0 + LEASE) is None
    finally:
        await store.close()
    version = "SELECT value FROM servcore_meta WHERE key = 'schema_version'"
    assert read_file(db_path, version) == [(str(SCHEMA_VERSION),)] == [("9",)]
