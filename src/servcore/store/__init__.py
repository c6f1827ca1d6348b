"""Job stores behind URLs: ``memory://``, ``sqlite:///path.db``, ``postgresql://…``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from servcore.store.base import Store, StoreError
from servcore.store.memory import MemoryStore
from servcore.store.postgres import PostgresStore
from servcore.store.sqlite import SqliteStore

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "missing_database",
    "store_from_url",
]


def store_from_url(url: str) -> Store:
    """Build (not open) the store a URL names.

    ``memory://`` — in-process, nothing durable.
    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` — add
    ``?synchronous=NORMAL`` to trade power-loss durability for speed.
    ``postgresql://user@host:port/db`` — add ``?schema=NAME`` (default
    ``public``) to keep two services apart, ``?pool_size=N`` (default 10).
    """
    parts = urlsplit(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "memory":
        _no_options(url, options, set())
        return MemoryStore(url)
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise StoreError(
                f"bad store URL {url!r}: write sqlite:///relative.db or sqlite:////absolute.db"
            )
        _no_options(url, options, {"synchronous"})
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        try:
            return SqliteStore(url, path, synchronous=options.get("synchronous", "FULL"))
        except ValueError as error:
            raise StoreError(f"bad store URL {url!r}: {error}") from None
    if parts.scheme in ("postgresql", "postgres"):
        _no_options(url, options, {"schema", "pool_size"})
        dsn = parts._replace(query="").geturl()
        try:
            pool_size = int(options.get("pool_size", "10"))
            return PostgresStore(
                url, dsn, schema=options.get("schema", "public"), pool_size=pool_size
            )
        except ValueError as error:
            raise StoreError(f"bad store URL {url!r}: {error}") from None
    raise StoreError(
        f"unsupported store URL {url!r}: use memory://, sqlite:///path.db "
        "or postgresql://user@host:port/db"
    )


async def missing_database(url: str) -> str | None:
    """What is missing where ``url`` points, if opening it would create it: a
    SQLite file, or servcore's tables in a PostgreSQL schema. None when it is
    there (or for ``memory://``, which is never anywhere)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not parts.netloc:
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return None if _exists(path) else f"no database at {path}"
    if parts.scheme in ("postgresql", "postgres"):
        store = store_from_url(url)
        assert isinstance(store, PostgresStore)
        if not await store.has_tables():
            return f"no servcore tables in PostgreSQL schema {store.schema!r}"
    return None


def _exists(path: str) -> bool:
    return Path(path).exists()  # one stat: not worth a thread


def _no_options(url: str, options: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise StoreError(f"bad store URL {url!r}: unknown option(s) {', '.join(unknown)}")
