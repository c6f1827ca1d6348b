"""Seeing, on one host, whether a worker process is still alive.

Each node that claims jobs from a SQLite file holds an exclusive ``flock`` on
a file of its own beside the database for as long as its process lives. The
kernel drops the lock when the process dies — ``kill -9`` included — so a
node whose lock can be taken is dead, and its running jobs can be rescued at
once rather than when their leases run out.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


class NodeLocks:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._held: dict[str, int] = {}

    def _path(self, node: str) -> Path:
        return self._directory / (_UNSAFE.sub("_", node) + ".lock")

    def hold(self, node: str) -> None:
        """Take this process's lock for ``node`` (idempotent)."""
        if node in self._held:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(node), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"node name {node!r} is already in use by a live process") from None
        self._held[node] = fd

    def is_alive(self, node: str) -> bool:
        """False when no live process holds ``node``'s lock."""
        if node in self._held:
            return True
        path = self._path(node)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release_all(self) -> None:
        for node, fd in self._held.items():
            try:
                self._path(node).unlink(missing_ok=True)
            finally:
                os.close(fd)
        self._held.clear()
