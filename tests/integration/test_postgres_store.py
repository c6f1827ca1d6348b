"""PostgreSQL only: schema set-up under concurrency, isolation, and the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from click.testing import CliRunner

from servcore.cli import main
from servcore.jobs import NewJob
from servcore.store import PostgresStore, StoreError, store_from_url
from servcore.store.base import ClaimParams
from servcore.store.postgres import schema as postgres_schema
from servcore.store.postgres.schema import SCHEMA_VERSION
from tests.postgres import DSN, postgres_url, require_postgres

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def a_job() -> NewJob:
    return NewJob(payload={"task": "x"}, run_at=NOW, task="x")


async def test_many_nodes_starting_at_once_migrate_the_schema_once() -> None:
    require_postgres()
    url = postgres_url()
    stores = [store_from_url(url) for _ in range(6)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        conn = await asyncpg.connect(DSN)
        try:
            schema = url.rsplit("schema=", 1)[1]
            version = await conn.fetchval(
                f"SELECT value FROM \"{schema}\".servcore_meta WHERE key = 'schema_version'"
            )
        finally:
            await conn.close()
        assert version == str(SCHEMA_VERSION)
        [job] = await stores[0].insert_jobs([a_job()], NOW)
        assert await stores[5].get_job(job.id) == job
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_two_schemas_in_one_database_do_not_see_each_other() -> None:
    require_postgres()
    first, second = store_from_url(postgres_url()), store_from_url(postgres_url())
    await first.open()
    await second.open()
    try:
        await first.insert_jobs([a_job(), a_job()], NOW)
        assert (await first.count_jobs(NOW)).total == 2
        assert (await second.count_jobs(NOW)).total == 0
    finally:
        await first.close()
        await second.close()


def test_store_url_options_are_checked() -> None:
    store = store_from_url("postgresql://root@127.0.0.1:5432/test?schema=app_one&pool_size=4")
    assert isinstance(store, PostgresStore)
    assert store.schema == "app_one"
    for bad in (
        "postgresql://root@127.0.0.1/test?schema=drop;table",
        "postgresql://root@127.0.0.1/test?pool_size=one",
        "postgresql://root@127.0.0.1/test?sslmode=require&colour=red",
    ):
        with pytest.raises(StoreError, match="bad store URL"):
            store_from_url(bad)


def test_servcore_migrate_prepares_a_postgres_schema() -> None:
    require_postgres()
    url = postgres_url()
    result = CliRunner().invoke(main, ["migrate", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"store ready: {url}"


async def test_one_unique_key_submitted_from_many_nodes_makes_one_job() -> None:
    require_postgres()
    url = postgres_url()
    nodes = [store_from_url(url) for _ in range(4)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        job = NewJob(payload={"task": "x", "n": 1}, run_at=NOW, task="x", unique_key="k")
        results = await asyncio.gather(
            *(node.insert_unique(job, NOW, NOW) for node in nodes for _ in range(5))
        )
        assert [r.outcome for r in results].count("created") == 1
        assert len({r.job.id for r in results}) == 1
    finally:
        await asyncio.gather(*(node.close() for node in nodes))


async def test_a_version_4_schema_is_brought_forward_with_its_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres()
    url = postgres_url()
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(DSN)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(postgres_schema, "SCHEMA_VERSION", 4)
            patch.setattr(postgres_schema, "OPTIONAL_COLUMNS", ())  # as version 4 was
            await postgres_schema.migrate(conn, schema)
        await conn.execute(
            f'INSERT INTO "{schema}".servcore_jobs '
            "(queue, task, payload, status, max_attempts, run_at, inserted_at) "
            "VALUES ('default', 'old', '{}', 'queued', 3, now(), now())"
        )
    finally:
        await conn.close()
    store = store_from_url(url)
    await store.open()
    try:
        old = await store.get_job(1)
        assert old is not None
        assert (old.task, old.result_ttl) == ("old", None)
        [fresh] = await store.insert_jobs([a_job()], NOW)
        assert await store.get_job(fresh.id) == fresh
    finally:
        await store.close()


async def test_a_pause_waits_for_claims_under_way_to_commit() -> None:
    require_postgres()
    store = store_from_url(postgres_url())
    assert isinstance(store, PostgresStore)
    await store.open()
    conn = await asyncpg.connect(DSN)
    try:
        # Hold what a claim of queue "video" holds, as one under way would.
        claim = conn.transaction()
        await claim.start()
        await conn.execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
            postgres_schema.LOCK_QUEUE,
            f"{store._jobs}:video",
        )
        pausing = asyncio.ensure_future(store.set_paused("video", True))
        done, _ = await asyncio.wait([pausing], timeout=0.3)
        assert not done  # the pause is held back by the claim in flight
        await claim.commit()
        await asyncio.wait_for(pausing, 10)
        assert [q.paused for q in await store.list_queues(NOW) if q.name == "video"] == [True]
    finally:
        await conn.close()
        await store.close()


async def test_a_claim_that_waited_for_a_pause_sees_it() -> None:
    require_postgres()
    store = store_from_url(postgres_url())
    assert isinstance(store, PostgresStore)
    await store.open()
    conn = await asyncpg.connect(DSN)
    try:
        await store.insert_jobs([a_job()], NOW)
        # A pause under way, as set_paused runs it: lock, then write, then commit.
        pause = conn.transaction()
        await pause.start()
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            postgres_schema.LOCK_QUEUE,
            f"{store._jobs}:default",
        )
        await conn.execute(
            f'INSERT INTO "{store.schema}".servcore_queues (name, paused) VALUES ($1, true)',
            "default",
        )
        params = ClaimParams("default", 10, "n", NOW, NOW + timedelta(seconds=30))
        claiming = asyncio.ensure_future(store.claim_jobs(params))
        done, _ = await asyncio.wait([claiming], timeout=0.3)
        assert not done  # held back by the pause in flight
        await pause.commit()
        assert await asyncio.wait_for(claiming, 10) == []
    finally:
        await conn.close()
        await store.close()


async def test_a_version_6_schema_gets_counts_of_the_finished_jobs_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres()
    url = postgres_url()
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(DSN)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(postgres_schema, "SCHEMA_VERSION", 6)
            await postgres_schema.migrate(conn, schema)
        for queue, status in [("a", "done"), ("a", "done"), ("a", "failed"), ("b", "cancelled")]:
            await conn.execute(
                f'INSERT INTO "{schema}".servcore_jobs (queue, task, payload, status, '
                "max_attempts, run_at, inserted_at, finished_at) "
                "VALUES ($1, 'old', '{}', $2, 3, now(), now(), now())",
                queue,
                status,
            )
    finally:
        await conn.close()

    store = store_from_url(url)
    await store.open()
    try:
        tallies = {info.name: info for info in await store.list_queues(NOW)}
        assert (tallies["a"].done, tallies["a"].failed, tallies["b"].cancelled) == (2, 1, 1)
        await store.insert_jobs([a_job()], NOW)
        assert (await store.count_jobs(NOW)).total == 5
    finally:
        await store.close()


async def test_a_version_8_schema_gains_the_leader_lease_and_keeps_its_running_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres()
    url = postgres_url()
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(DSN)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(postgres_schema, "SCHEMA_VERSION", 8)
            await postgres_schema.migrate(conn, schema)
        assert not await conn.fetchval("SELECT to_regclass($1)", f"{schema}.servcore_leader")
    finally:
        await conn.close()
    old = store_from_url(url)
    await old.open()  # migrates to the current version
    try:
        [job] = await old.insert_jobs([a_job()], NOW)
        [running] = await old.claim_jobs(
            ClaimParams("default", 1, "n1", NOW, NOW + timedelta(seconds=30))
        )
        term = await old.seek_leadership("n1", NOW, NOW + timedelta(seconds=10))
        assert term is not None
        assert await old.seek_leadership("n2", NOW, NOW + timedelta(seconds=10)) is None
        assert (await old.get_job(job.id)) == running
    finally:
        await old.close()
    conn = await asyncpg.connect(DSN)
    try:
        version = await conn.fetchval(
            f"SELECT value FROM \"{schema}\".servcore_meta WHERE key = 'schema_version'"
        )
        assert version == str(SCHEMA_VERSION) == "9"
    finally:
        await conn.close()
