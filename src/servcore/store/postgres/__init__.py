"""``postgresql://…``: the store many nodes share (see :mod:`servcore.store.postgres.store`)."""

from servcore.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
