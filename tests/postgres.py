"""The PostgreSQL the tests use: reachable or skipped (never skipped under CI).

Each store a test makes gets a schema of its own, so runs never see each
other's jobs; the schemas are dropped when the session ends.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

DSN = os.environ.get("SERVCORE_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
_RUN = uuid.uuid4().hex[:8]


class _Postgres:
    def __init__(self) -> None:
        self.reachable: bool | None = None
        self.reason = ""
        self.schemas: list[str] = []

    def check(self) -> bool:
        if self.reachable is None:
            try:
                # In a thread of its own: the caller may be inside an event loop.
                with ThreadPoolExecutor(1) as thread:
                    thread.submit(asyncio.run, _ping()).result()
                self.reachable = True
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                self.reachable = False
                self.reason = f"PostgreSQL not reachable at {DSN}: {error}"
        return self.reachable

    def new_schema(self) -> str:
        schema = f"servcore_test_{_RUN}_{len(self.schemas)}"
        self.schemas.append(schema)
        return schema

    def drop_schemas(self) -> None:
        if self.schemas and self.reachable:
            asyncio.run(_drop(self.schemas))
        self.schemas.clear()


async def _ping() -> None:
    conn = await asyncpg.connect(DSN, timeout=5)
    await conn.close()


async def _drop(schemas: list[str]) -> None:
    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


POSTGRES = _Postgres()


def require_postgres() -> None:
    """Skip the test without PostgreSQL — except under CI, where that fails."""
    if POSTGRES.check():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{POSTGRES.reason} (CI=true: PostgreSQL tests must run)")
    pytest.skip(POSTGRES.reason)


def postgres_url() -> str:
    """A store URL for a fresh schema of this test run."""
    return f"{DSN}?schema={POSTGRES.new_schema()}"
