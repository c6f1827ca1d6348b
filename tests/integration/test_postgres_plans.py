"""PostgreSQL: the hot statements keep an index plan at any table size and any statistics.

A store's statements are planned on the store's own connections. Here those
connections also load ``auto_explain``, which sends the plan of every
statement they run back to the client as a log message, so the test reads
the plans PostgreSQL really used — cached ones included — not plans it
would make afresh for an EXPLAIN.

The statements are first run on a tiny table (where a scan of the whole
table is the cheapest plan, and a cached plan may be kept), then the table
grows to 100,000 rows without ever being analyzed (autovacuum may be off,
as it is on this project's machines), or after being analyzed while tiny.
Every hot statement must then reach ``servcore_jobs`` through an index, and
an id-keyed batch must look its ids up by primary key, never scan the
running jobs once per id. (Issue 10: a completion planned on a tiny table
kept a nested loop that compared every running row with every completed
id and ran for 13 minutes.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from servcore.jobs import JobError, NewJob
from servcore.store import store_from_url
from servcore.store.base import ClaimParams, Completion, Failure, Lease
from servcore.store.postgres import PostgresStore
from tests.conftest import wait_for
from tests.postgres import postgres_url, require_postgres

pytestmark = [
    pytest.mark.slow,
    # The listener stays on a connection the pool takes back; it is added again on acquire.
    pytest.mark.filterwarnings("ignore::asyncpg.exceptions.InterfaceWarning"),
]

ROWS = 100_000


class PlanLog:
    """The plans auto_explain reported, in order."""

    def __init__(self) -> None:
        self.plans: list[dict[str, Any]] = []

    def listener(self, connection: object, message: asyncpg.PostgresLogMessage) -> None:
        text = message.message or ""
        start = text.find("{")
        if "plan:" in text and start >= 0:
            self.plans.append(json.loads(text[start:]))

    def since(self, mark: int) -> list[dict[str, Any]]:
        return self.plans[mark:]


@pytest.fixture
def plan_log(monkeypatch: pytest.MonkeyPatch) -> PlanLog:
    """Every pool a store opens here reports its plans to the returned log."""
    log = PlanLog()
    create_pool = asyncpg.create_pool

    async def setup(connection: asyncpg.Connection) -> None:
        # A pool clears log listeners when a connection comes back: add it on every acquire.
        connection.add_log_listener(log.listener)

    def reporting_pool(*args: Any, **kwargs: Any) -> Any:
        settings = dict(kwargs.pop("server_settings", None) or {})
        settings.update(
            {
                "session_preload_libraries": "auto_explain",
                "auto_explain.log_min_duration": "0",
                "auto_explain.log_format": "json",
                "auto_explain.log_nested_statements": "on",
                "client_min_messages": "log",
            }
        )
        return create_pool(*args, server_settings=settings, setup=setup, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", reporting_pool)
    return log


@pytest.fixture
async def store(plan_log: PlanLog) -> AsyncIterator[PostgresStore]:
    require_postgres()
    # pool_size 2: one connection takes every call, so a plan it caches is reused.
    opened = store_from_url(postgres_url() + "&pool_size=2")
    assert isinstance(opened, PostgresStore)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans_of_jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        node
        for node in _nodes(plan["Plan"])
        if node.get("Relation Name") == "servcore_jobs" and "Scan" in node["Node Type"]
    ]


def _describe(plan: dict[str, Any]) -> str:
    lines = []

    def walk(node: dict[str, Any], depth: int) -> None:
        name = node["Node Type"]
        if "Relation Name" in node:
            name += f" on {node['Relation Name']}"
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        lines.append("  " * depth + f"{name} (rows={node.get('Plan Rows')})")
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(plan["Plan"], 0)
    return plan.get("Query Text", "")[:160].strip() + "\n" + "\n".join(lines)


def _uses(plan: dict[str, Any], index: str) -> bool:
    return any(node.get("Index Name") == index for node in _nodes(plan["Plan"]))


def _assert_index_plans(plans: list[dict[str, Any]], what: str) -> None:
    touching = [plan for plan in plans if _scans_of_jobs(plan)]
    assert touching, f"{what}: no statement on servcore_jobs was seen"
    for plan in touching:
        for scan in _scans_of_jobs(plan):
            assert scan["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), (
                f"{what}: servcore_jobs read by {scan['Node Type']}:\n{_describe(plan)}"
            )
        for node in _nodes(plan["Plan"]):
            if node["Node Type"] == "Nested Loop":
                # A function scan (the batch's ids) as the inner side runs once per outer row.
                assert node["Plans"][1]["Node Type"] != "Function Scan", (
                    f"{what}: the batch's ids are scanned once per job row:\n{_describe(plan)}"
                )
    claims = [plan for plan in touching if "SET status = 'running'" in plan["Query Text"]]
    promotions = [plan for plan in touching if "SET status = 'queued'\n" in plan["Query Text"]]
    rescues = [plan for plan in touching if "locked_until <= $1" in plan["Query Text"]]
    orphans = [
        plan for plan in touching if "locked_by = $1 AND started_at < $2" in plan["Query Text"]
    ]
    assert claims, f"{what}: no claim was seen"
    assert promotions, f"{what}: no promotion of scheduled jobs was seen"
    assert rescues, f"{what}: no rescue was seen"
    assert orphans, f"{what}: no check for lost claims was seen"
    for plan in claims:
        # The ready index hands jobs over in claim order: no sort of every queued job.
        assert _uses(plan, "servcore_jobs_ready"), f"{what}: claim\n{_describe(plan)}"
        assert all(node["Node Type"] != "Sort" for node in _nodes(plan["Plan"])), (
            f"{what}: the claim sorts the queue:\n{_describe(plan)}"
        )
    for plan in promotions:
        assert _uses(plan, "servcore_jobs_scheduled"), f"{what}: promotion\n{_describe(plan)}"
    for plan in rescues:
        assert _uses(plan, "servcore_jobs_leases"), f"{what}: rescue\n{_describe(plan)}"
    for plan in orphans:
        assert _uses(plan, "servcore_jobs_leases"), f"{what}: lost claims\n{_describe(plan)}"


def _new_jobs(count: int, run_at: datetime) -> list[NewJob]:
    return [NewJob(payload={"n": n}, run_at=run_at, task="t") for n in range(count)]


async def _exercise(store: PostgresStore, now: datetime, batch: int) -> dict[str, int]:
    """Insert, claim and settle ``batch`` jobs through each hot verb; the marks
    (indexes into the plan log) are taken by the caller."""
    later = now + timedelta(milliseconds=1)
    jobs = await store.insert_jobs(_new_jobs(batch * 3, now) + _new_jobs(batch, later), now)
    due = now + timedelta(seconds=1)  # the scheduled ones too
    params = ClaimParams("default", batch * 4, "plans", due, due + timedelta(seconds=30))
    claimed = await store.claim_jobs(params)
    assert len(claimed) == batch * 4, "the claim took every new job"
    leases = [Lease(job.id, job.lease_token) for job in claimed]
    await store.extend_leases(leases, now + timedelta(seconds=60))
    # Every node's check for claims that never reached it, every lease/3 (here:
    # the jobs an earlier round left running are the orphans).
    held = {job.id for job in claimed}
    assert not held & set(await store.release_orphans("plans", held, due + timedelta(seconds=1)))
    completions = [Completion(job.id, job.lease_token, now, None) for job in claimed[:batch]]
    assert await store.complete_jobs(completions) == []
    error = JobError(1, now, "boom")
    failures = [Failure(job.id, job.lease_token, error, None) for job in claimed[batch : batch * 2]]
    assert await store.fail_jobs(failures) == []
    assert await store.release_jobs(leases[batch * 2 : batch * 3]) == []
    await store.rescue_expired_leases(now, 3)
    return {"inserted": len(jobs)}


async def _grow(store: PostgresStore, rows: int, *, analyze_first: bool) -> None:
    """Add ``rows`` jobs by SQL, as a burst leaves them: most running, some queued,
    done, or scheduled for later."""
    jobs = f'"{store.schema}".servcore_jobs'
    conn = await asyncpg.connect(store._dsn)
    try:
        if analyze_first:
            # The worst statistics: taken when no job was running.
            await conn.execute(f"UPDATE {jobs} SET status = 'done' WHERE status <> 'done'")
            await conn.execute(f"ANALYZE {jobs}")
        await conn.execute(
            f"""
            INSERT INTO {jobs} (queue, task, payload, status, max_attempts, run_at,
                                inserted_at, locked_by, locked_until, attempt, lease_token)
            SELECT 'default', 't', '{{}}',
                   CASE WHEN n % 10 < 5 THEN 'running' WHEN n % 10 < 7 THEN 'done'
                        WHEN n % 10 < 9 THEN 'queued' ELSE 'scheduled' END,
                   3, now() + interval '1 hour', now(), 'elsewhere', now() + interval '1 hour',
                   1, 1
            FROM generate_series(1, $1) AS n
            """,
            rows,
        )
        analyzed = await conn.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", jobs
        )
    finally:
        await conn.close()
    if not analyze_first:
        assert analyzed == -1, "the grown table was never analyzed"


@pytest.mark.parametrize("analyzed_while_tiny", [False, True], ids=["never-analyzed", "stale"])
async def test_hot_statements_keep_index_plans_as_the_table_grows(
    store: PostgresStore, plan_log: PlanLog, analyzed_while_tiny: bool
) -> None:
    now = datetime.now(UTC)
    # Tiny table, several rounds: a plan cache would settle on a generic plan here.
    for _ in range(8):
        await _exercise(store, now, batch=2)
    await _grow(store, ROWS, analyze_first=analyzed_while_tiny)
    mark = len(plan_log.plans)
    await _exercise(store, now, batch=500)
    _assert_index_plans(plan_log.since(mark), "after growing to 100,000 rows")


async def _table_state(store: PostgresStore) -> asyncpg.Record:
    conn = await asyncpg.connect(store._dsn)
    try:
        return await conn.fetchrow(
            "SELECT c.reltuples, s.n_mod_since_analyze, s.n_dead_tup, s.vacuum_count "
            "FROM pg_class AS c "
            "JOIN pg_stat_user_tables AS s ON s.relid = c.oid WHERE c.oid = $1::regclass",
            f'"{store.schema}".servcore_jobs',
        )
    finally:
        await conn.close()


async def test_the_store_analyzes_a_table_that_grew_and_vacuums_without_autovacuum(
    store: PostgresStore,
) -> None:
    now = datetime.now(UTC)
    assert await store.tend_tables() == [], "an empty table needs nothing"
    await store.insert_jobs(_new_jobs(5_000, now), now)
    # The server counts changes a moment after they commit.
    await wait_for(lambda: _stat(store, "n_mod_since_analyze", 5_000), message="counted inserts")
    assert await store.tend_tables() == ["ANALYZE"]
    assert (await _table_state(store))["reltuples"] == 5_000, "the planner knows the rows"
    await wait_for(lambda: _stat(store, "n_mod_since_analyze", 0, exact=True), message="reset")
    assert await store.tend_tables() == [], "nothing changed since"

    claimed = await store.claim_jobs(
        ClaimParams("default", 5_000, "plans", now, now + timedelta(seconds=30))
    )
    await store.complete_jobs([Completion(job.id, job.lease_token, now, 1) for job in claimed])
    await wait_for(lambda: _stat(store, "n_dead_tup", 10_000), message="counted dead rows")
    autovacuum = await store._ready_pool().fetchval("SHOW autovacuum")
    expected = ["ANALYZE"] if autovacuum == "on" else ["ANALYZE", "VACUUM"]
    assert await store.tend_tables() == expected
    if autovacuum != "on":
        await wait_for(lambda: _stat(store, "vacuum_count", 1), message="vacuumed")


async def _stat(store: PostgresStore, column: str, at_least: int, *, exact: bool = False) -> bool:
    value = (await _table_state(store))[column]
    return bool(value == at_least if exact else value >= at_least)
