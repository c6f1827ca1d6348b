"""Creating and dropping the per-phase PostgreSQL schema (the harness's side)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from peers.place import PG_DATABASE, PG_HOST, PG_PORT, PG_USER


def _connect() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DATABASE, autocommit=True
    )


def create_schema(schema: str) -> None:
    with _connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def drop_schema(schema: str) -> None:
    with _connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def server_version() -> str:
    with _connect() as conn:
        row = conn.execute("SHOW server_version").fetchone()
        settings = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            for name in ("fsync", "synchronous_commit")
        }
    described = ", ".join(f"{name}={value[0]}" for name, value in settings.items() if value)
    return f"{row[0] if row else '?'} ({described})"
