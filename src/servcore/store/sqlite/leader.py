"""The leader lease in a SQLite file: one row, written by the group-commit
writer, so taking, renewing and checking it are serialised with every other
write on the file (see ``store.base``, "Leadership and fencing")."""

from __future__ import annotations

import sqlite3

from servcore.leadership.base import LeaderTerm

# Renewed in the same term while the holder's lease lives; otherwise taken in
# the next one (every SET reads the row as it was).
_SEEK = """
INSERT INTO servcore_leader (id, node, term, expires_at) VALUES (1, :node, 1, :until)
ON CONFLICT (id) DO UPDATE SET
    term = CASE WHEN node = excluded.node AND expires_at > :now THEN term ELSE term + 1 END,
    node = excluded.node, expires_at = excluded.expires_at
WHERE node = excluded.node OR expires_at <= :now
RETURNING term
"""


def seek(conn: sqlite3.Connection, node: str, now_us: int, until_us: int) -> LeaderTerm | None:
    row = conn.execute(_SEEK, {"node": node, "now": now_us, "until": until_us}).fetchone()
    return LeaderTerm(node, row[0]) if row is not None else None


def resign(conn: sqlite3.Connection, held: LeaderTerm, now_us: int) -> None:
    conn.execute(
        "UPDATE servcore_leader SET expires_at = ? WHERE id = 1 AND node = ? AND term = ?",
        (now_us, held.node, held.term),
    )


def leads(conn: sqlite3.Connection, fence: LeaderTerm | None) -> bool:
    """True unless ``fence`` is given and is no longer the current term (call
    inside the write it guards)."""
    if fence is None:
        return True
    row = conn.execute(
        "SELECT 1 FROM servcore_leader WHERE id = 1 AND node = ? AND term = ?",
        (fence.node, fence.term),
    ).fetchone()
    return row is not None
