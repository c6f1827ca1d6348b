"""A leader that freezes (SIGSTOP: alive, connected, silent) on a 3-node
PostgreSQL cluster of real ``servcore worker`` processes.

With a session advisory lock the frozen leader kept leading and nobody
rescued anything: its jobs stayed ``running`` for as long as it was stopped.
With a leader lease it is replaced within the lease plus a second, the new
leader rescues its jobs, and on waking it knows it lost and does no leader
work.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from servcore.store import store_from_url
from tests.conformance.support import new_job
from tests.postgres import DSN, postgres_url, require_postgres
from tests.processes import ServerProcess, servcore_worker

pytestmark = pytest.mark.slow

LEASE = 3.0  # job lease and (capped by it) leader lease, seconds
# A loaded 2-core machine may be slow to schedule the nodes: this much more
# than the promise is tolerated. Today's code never hands over at all.
LOAD_ALLOWANCE = 2.5
NODES = ("w1", "w2", "w3")
CRON = """
[[cron]]
expression = "* * * * *"
task = "tick"
"""


def wait_until(condition: object, timeout: float, message: str) -> float:
    """Seconds it took ``condition()`` to hold; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.05)
    return time.monotonic() - started


class Database:
    """Reads of the cluster's schema, as an operator would make them."""

    def __init__(self, url: str) -> None:
        self.schema = url.rsplit("schema=", 1)[1]

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(DSN)
            try:
                return list(await conn.fetch(sql.replace("$S", f'"{self.schema}"'), *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def leader(self) -> tuple[str, int] | None:
        """The lease holder (node, term) while its lease lives."""
        try:
            rows = self.fetch("SELECT node, term FROM $S.servcore_leader WHERE expires_at > now()")
        except asyncpg.UndefinedTableError:  # no node has created the schema yet
            return None
        return (rows[0]["node"], rows[0]["term"]) if rows else None

    def announced_leader(self) -> str | None:
        """The node whose last heartbeat said it leads (what ``GET /nodes`` shows)."""
        rows = self.fetch("SELECT node FROM $S.servcore_nodes WHERE leader")
        return rows[0]["node"] if len(rows) == 1 else None

    def running_on(self, node: str) -> set[int]:
        rows = self.fetch(
            "SELECT id FROM $S.servcore_jobs WHERE status = 'running' AND locked_by = $1", node
        )
        return {row["id"] for row in rows}

    def ticks_inserted_twice(self) -> list[asyncpg.Record]:
        return self.fetch(
            "SELECT run_at, count(*) FROM $S.servcore_jobs WHERE task = 'tick' "
            "GROUP BY run_at HAVING count(*) > 1"
        )


@contextmanager
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, ServerProcess]]]:
    require_postgres()
    url = postgres_url()
    (tmp_path / "servcore.toml").write_text(CRON)
    env = {"RECORD_FILE": str(tmp_path / "executions.txt")}
    with ExitStack() as stack:
        workers = {
            name: stack.enter_context(
                servcore_worker(
                    tmp_path,
                    "tests.process_tasks:service",
                    *("--store", url, "--node", name, "--lease", str(LEASE)),
                    *("--concurrency", "2", "--log-level", "warning"),
                    env=env,
                    name=name,
                )
            )
            for name in NODES
        }
        try:
            yield url, workers
        finally:
            for worker in workers.values():
                if worker.process.poll() is None:
                    worker.signal(signal.SIGCONT)  # a stopped process cannot be reaped


def enqueue_sleepers(url: str, count: int, seconds: float) -> None:
    async def run() -> None:
        store = store_from_url(url)
        await store.open()
        try:
            now = datetime.now(UTC)
            payload = {"task": "sleep", "seconds": seconds}
            jobs = [new_job(task="sleep", payload=payload, run_at=now) for _ in range(count)]
            await store.insert_jobs(jobs, now)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_frozen_leader_is_replaced_its_jobs_rescued_and_on_waking_it_does_no_leader_work(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as (url, workers):
        db = Database(url)
        # Every slot busy (3 nodes x 2) with jobs that outlast the test's freeze.
        enqueue_sleepers(url, 6, 60)
        wait_until(
            lambda: all(len(db.running_on(name)) == 2 for name in NODES), 30, "6 jobs running"
        )
        wait_until(lambda: db.announced_leader() in NODES, 30, "a leader")
        frozen_name = db.announced_leader()
        assert frozen_name is not None
        held = db.leader()  # checked below, after what the freeze must bring about
        frozen = workers[frozen_name]
        stuck = db.running_on(frozen_name)

        frozen.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        replaced_at: float | None = None

        def rescued() -> bool:
            nonlocal replaced_at
            leader = db.leader()
            if replaced_at is None and leader is not None and leader[0] != frozen_name:
                replaced_at = time.monotonic()
            return not db.running_on(frozen_name) & stuck

        rescued_after = wait_until(rescued, 2 * LEASE + 30, "the frozen leader's jobs rescued")
        assert held is not None
        assert held[0] == frozen_name
        assert replaced_at is not None
        replaced_after = replaced_at - stopped_at
        new_leader = db.leader()
        assert new_leader is not None
        assert new_leader[0] != frozen_name
        assert new_leader[1] > held[1]
        woken_log_from = len(frozen.output())

        frozen.signal(signal.SIGCONT)
        wait_until(
            lambda: f"Node {frozen_name} is no longer the leader" in frozen.output(),
            30,
            "the woken leader to learn it lost",
        )
        # Exactly one leader afterwards: the lease stays with the new one. (A
        # renewal late under load may let it lapse for a moment; the same node
        # takes it back, in a later term. Once seen in CI, cause not found.)
        holders: list[tuple[str, int]] = []
        for _ in range(int(3 * LEASE / 0.25)):
            leader = db.leader()
            if leader is not None:
                holders.append(leader)
            time.sleep(0.25)
        assert {node for node, _ in holders} == {new_leader[0]}
        assert all(term >= new_leader[1] for _, term in holders)
        after_waking = frozen.output()[woken_log_from:]
        for leader_work in ("Rescued", "Pruned", "Cron"):
            assert leader_work not in after_waking, after_waking
        assert db.ticks_inserted_twice() == []

    print(f"replaced after {replaced_after:.2f} s, its jobs rescued after {rescued_after:.2f} s")
    # Promised: replaced within the lease + 1 s, rescued within two leases.
    assert replaced_after <= LEASE + 1 + LOAD_ALLOWANCE
    assert rescued_after <= 2 * LEASE + LOAD_ALLOWANCE
