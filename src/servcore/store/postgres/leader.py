"""The leader lease in PostgreSQL: one row of ``servcore_leader`` (see
``store.base``, "Leadership and fencing").

A fenced write carries :func:`fence_check` in its own statement: it locks
the lease row ``FOR SHARE`` while it writes, so a takeover (an UPDATE of
that row) waits for it to commit, and a takeover committed first makes the
check, and so the write, come out empty.
"""

from __future__ import annotations

from typing import Any

from servcore.leadership.base import LeaderTerm


def seek_sql(schema: str) -> str:
    """$1 node, $2 now, $3 until → the term, or no row."""
    # Renewed in the same term while the holder's lease lives; otherwise taken
    # in the next one (every SET reads the row as it was).
    return f"""
    INSERT INTO "{schema}".servcore_leader AS l (id, node, term, expires_at)
    VALUES (1, $1, 1, $3)
    ON CONFLICT (id) DO UPDATE SET
        term = CASE WHEN l.node = excluded.node AND l.expires_at > $2 THEN l.term
                    ELSE l.term + 1 END,
        node = excluded.node, expires_at = excluded.expires_at
    WHERE l.node = excluded.node OR l.expires_at <= $2
    RETURNING term
    """


def resign_sql(schema: str) -> str:
    """$1 node, $2 term, $3 now."""
    return (
        f'UPDATE "{schema}".servcore_leader SET expires_at = $3 '
        "WHERE id = 1 AND node = $1 AND term = $2"
    )


def fence_check(schema: str, fence: LeaderTerm | None, first: int) -> tuple[str, list[Any]]:
    """A condition true while ``fence`` is the current term (always, for None),
    with its arguments, numbered from ``$first``."""
    if fence is None:
        return "TRUE", []
    return (
        f'EXISTS (SELECT 1 FROM "{schema}".servcore_leader '
        f"WHERE id = 1 AND node = ${first} AND term = ${first + 1} FOR SHARE)",
        [fence.node, fence.term],
    )
