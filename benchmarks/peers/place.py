"""Where one phase's jobs live: its SQLite file, PostgreSQL schema, Redis keys.

Every phase of every run gets a fresh place, so no run sees another's rows.
The harness hands it to the client and worker processes in the environment
(``PEERS_RUN_ID``, ``PEERS_DIR``); the apps read it back at import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# The stores, on loopback only.
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "root"
PG_DATABASE = "test"
PG_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

# Set for every worker process: its jobs at once (for apps whose CLI has no flag).
CONCURRENCY_ENV = "PEERS_CONCURRENCY"

_RUN_ID = "PEERS_RUN_ID"
_DIR = "PEERS_DIR"


@dataclass(frozen=True)
class Place:
    """A phase's identity (``run_id``: letters, digits, ``_``) and scratch directory."""

    run_id: str
    directory: Path

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]{1,40}", self.run_id):
            raise ValueError(f"run id must be 1-40 of [a-z0-9_], got {self.run_id!r}")

    @property
    def record_key(self) -> str:
        """The Redis list every handler of this phase appends its record to."""
        return f"peers:records:{self.run_id}"

    @property
    def sqlite_path(self) -> Path:
        return self.directory / "jobs.db"

    @property
    def pg_schema(self) -> str:
        return f"peers_{self.run_id}"

    @property
    def redis_queue(self) -> str:
        return f"peers:queue:{self.run_id}"

    def to_env(self) -> dict[str, str]:
        return {_RUN_ID: self.run_id, _DIR: str(self.directory)}

    @classmethod
    def from_env(cls) -> Place:
        try:
            return cls(os.environ[_RUN_ID], Path(os.environ[_DIR]))
        except KeyError as missing:
            raise RuntimeError(
                f"{missing} is not set: run this through the peers harness"
            ) from None
