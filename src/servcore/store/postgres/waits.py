"""No PostgreSQL wait outlives a lease, and a timeout says whom it waited for.

A statement that runs or waits for minutes holds up everything behind it:
the outcomes it should record, the leases of those jobs, and with them the
rescues that would then run the jobs again. So every statement the store
sends has a ``statement_timeout`` and a ``lock_timeout``, and every
transaction an ``idle_in_transaction_session_timeout`` (which also frees the
row locks of a node that froze mid-transaction), all derived from the lease.
They are session settings given at connect: a pool's reset (``RESET ALL``)
returns to them. So are the TCP keepalive settings that let the server
notice a vanished client in seconds (``notifier.postgres.DEAD_PEER_SETTINGS``).

A statement that times out becomes a ``StoreError`` (the caller retries, or
its part goes DEGRADED on ``/health``) after one log line naming the
sessions that hold locks on the store's tables, oldest transaction first:
the likely blockers, with what they are running.

The planner settings keep the hot statements on their indexes whatever the
table's statistics (see ``tests/integration/test_postgres_plans.py``): a
plan is made for each execution, with the table's size at that moment,
never kept from when the table was tiny; and index probes are priced as
the cached reads they are for the rows a queue touches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from servcore.notifier.postgres import DEAD_PEER_SETTINGS

log = logging.getLogger("servcore.store")

PLANNER_SETTINGS = {"plan_cache_mode": "force_custom_plan", "random_page_cost": "1.1"}

# What a server-side timeout raises (statement, lock, idle in transaction).
TIMEOUT_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
    asyncpg.IdleInTransactionSessionTimeoutError,
)

_BLOCKERS = """
SELECT a.pid, a.state, a.wait_event_type, a.wait_event,
       extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start)) AS age,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity AS a
WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
  AND a.pid IN (SELECT l.pid FROM pg_locks AS l
                WHERE l.granted AND (l.locktype IN ('transactionid', 'advisory')
                      OR l.relation IN (SELECT c.oid FROM pg_class AS c
                                        JOIN pg_namespace AS n ON n.oid = c.relnamespace
                                        WHERE n.nspname = $1)))
ORDER BY coalesce(a.xact_start, a.query_start)
LIMIT 3
"""


@dataclass(frozen=True, slots=True)
class WaitLimits:
    """Seconds a statement may run, wait for a lock, or idle in a transaction."""

    statement: float
    lock: float
    idle_in_transaction: float

    @classmethod
    def for_lease(cls, lease: float) -> WaitLimits:
        # Half a lease: a stuck outcome write is given up and retried while
        # the jobs it records are still held (leases are renewed every third).
        # The floors keep short test leases from failing ordinary statements.
        return cls(
            statement=max(lease / 2, 2.0),
            lock=max(lease / 4, 1.0),
            idle_in_transaction=max(lease, 5.0),
        )

    def server_settings(self) -> dict[str, str]:
        return {
            **PLANNER_SETTINGS,
            **DEAD_PEER_SETTINGS,
            "statement_timeout": _milliseconds(self.statement),
            "lock_timeout": _milliseconds(self.lock),
            "idle_in_transaction_session_timeout": _milliseconds(self.idle_in_transaction),
        }


# What tend_tables decides on: how stale the statistics are, how many dead
# rows wait, and whether autovacuum (server-wide or for this table) is on.
TABLE_STATE = """
SELECT c.reltuples, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'autovacuum_enabled'),
                current_setting('autovacuum')) IN ('on', 'true') AS autovacuum
FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = $1::regclass
"""


def tending_due(state: asyncpg.Record) -> list[str]:
    """``ANALYZE`` once a tenth of the table changed since the last one (at
    least 1,000 rows): a queue's table can grow from nothing to millions of
    rows in a minute, faster than autovacuum looks, and the planner should
    know. ``VACUUM`` when autovacuum is off and a fifth of the rows are dead:
    every status change leaves one behind in each index."""
    known_rows = max(float(state["reltuples"]), 0.0)
    due = []
    if state["n_mod_since_analyze"] >= max(1000.0, known_rows / 10):
        due.append("ANALYZE")
    if not state["autovacuum"] and state["n_dead_tup"] >= max(10_000, state["n_live_tup"] / 5):
        due.append("VACUUM")
    return due


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


async def describe_blockers(pool: asyncpg.Pool, schema: str) -> str:
    """The sessions holding locks the store's statements may wait for, in one line."""
    try:
        rows = await pool.fetch(_BLOCKERS, schema, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"the sessions holding locks could not be read ({error})"
    if not rows:
        return "no other session holds a lock on its tables now"
    return "; ".join(
        f"pid {row['pid']} ({row['state']}"
        + (
            f", waiting on {row['wait_event_type']}/{row['wait_event']}"
            if row["wait_event"]
            else ""
        )
        + f", transaction open {float(row['age'] or 0):.1f} s): {row['query']}"
        for row in rows
    )


def statement_head(sql: str) -> str:
    """The first words of a statement, for a log line."""
    return " ".join(sql.split())[:80]
