"""Keeping a SQLite store usable on a small volume that fills up.

Three things wedged a full 3 MiB volume before. The write-ahead log was
checkpointed only every 1,000 pages (4 MiB), so on a small volume it held
nearly every job, and a checkpoint then needed as much space again to copy
it into the database: it could never finish. Space freed later was taken by
the log growing again. And opening the database in WAL mode creates a
32 KiB shared-memory file, so on a volume with no byte left the server
could not even start.

So:

* the log is checkpointed after at most a sixteenth of the volume's free
  space (at most the usual 1,000 pages, at least 32), and truncated to a
  bounded size when it is reset (``journal_size_limit``);
* when a write fails with "database or disk is full", the writer
  checkpoints and truncates the log (:meth:`SpaceKeeper.on_full`), then
  retries: once space has been freed, it goes to the database, not the log;
* a *reserve* file beside the database (``<db>-reserve``, 256 KiB) holds
  space back while there is plenty; it is given up when the volume is full —
  to open the database, or to let a checkpoint finish — and taken again
  once space is back (checked with the leader's table care, every 5 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("servcore.store.sqlite")

RESERVE_BYTES = 256 * 1024
_MOST_WAL_PAGES = 1000  # SQLite's own default
_LEAST_WAL_PAGES = 32
_LOOK_EVERY = 0.5  # seconds between attempts while the volume stays full
_SQLITE_FULL = 13


def disk_full(error: BaseException) -> bool:
    """Whether a SQLite error says the volume has no space left."""
    return isinstance(error, sqlite3.Error) and (
        error.sqlite_errorcode & 0xFF == _SQLITE_FULL
        or "database or disk is full" in str(error).lower()
    )


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


class SpaceKeeper:
    """The WAL bound, the reserve file and recovery from a full volume, for
    the database at ``path`` (used from the writer thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reserve = Path(f"{path}-reserve")
        self._last_look = 0.0

    def tune(self, conn: sqlite3.Connection) -> None:
        """Bound the write-ahead log by the volume's free space (at connect)."""
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        free = free_bytes(self.path.parent) + self._reserved()
        pages = max(_LEAST_WAL_PAGES, min(_MOST_WAL_PAGES, free // page // 16))
        conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        conn.execute(f"PRAGMA journal_size_limit = {2 * pages * page}")

    def hold_reserve(self) -> None:
        """Take the reserve back if it is gone and the volume has room to spare."""
        if self._reserved() or free_bytes(self.path.parent) < 4 * RESERVE_BYTES:
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:  # no room after all (another writer): try another time
            with contextlib.suppress(OSError):
                self.reserve.unlink()

    def give_up_reserve(self) -> bool:
        """Free the reserve's space; whether there was one."""
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        log.warning("The volume of %s is full: its reserve of space is given up", self.path)
        return True

    def on_full(self, conn: sqlite3.Connection) -> bool:
        """After a write failed for want of space: checkpoint the log into the
        database and truncate it, giving up the reserve if that is what it
        takes. Whether the log was emptied (the write is worth retrying)."""
        now = time.monotonic()
        if now - self._last_look < _LOOK_EVERY:
            return False
        self._last_look = now
        emptied = self._checkpoint(conn)
        if not emptied and self.give_up_reserve():
            emptied = self._checkpoint(conn)
        if emptied:
            log.warning("SQLite: the volume of %s was full; its log is checkpointed", self.path)
            self.hold_reserve()
        return emptied

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        return not busy

    def _reserved(self) -> int:
        try:
            return self.reserve.stat().st_size
        except FileNotFoundError:
            return 0
