"""``sqlite:///path.db``: the single-host store (see :mod:`servcore.store.sqlite.store`)."""

from servcore.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
