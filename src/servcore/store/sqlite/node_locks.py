"""Seeing, on one host, whether a worker process is still alive.

Each node that claims jobs from a SQLite file holds an exclusive ``flock`` on
a file of its own beside the database for as long as its process lives. The
kernel drops the lock when the process dies — ``kill -9`` included — so a
node whose lock can be taken is dead, and its running jobs can be rescued at
once rather than when their leases run out. The files are never deleted:
one small file per node name that ever ran.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

from servcore.store.base import StoreError

_HOLD_TRIES = 20

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
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path(node), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot register node {node!r}: {error}") from None
        # Another process may hold it for an instant while checking whether
        # the node is alive, so a few short retries before giving up.
        for attempt in range(_HOLD_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _HOLD_TRIES - 1:
                    os.close(fd)
                    raise StoreError(
                        f"node name {node!r} is already in use by a live process"
                    ) from None
                time.sleep(0.01)
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
        # The files stay: unlinking one while a same-named process opens it
        # would let that process lock a file nobody else can see.
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()
