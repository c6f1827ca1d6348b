"""SQLite: what one process commits wakes the others on the host at once,
over UNIX datagram sockets beside the database.

::

    any process (app, CLI, worker)            <db>-wake/
      writer thread: COMMIT ─▶ send ──────▶  1234-9f3c0a1b.sock ─▶ worker 1234: on_queue("email")
      one datagram per listener per commit   5678-77aa01c2.sock ─▶ worker 5678: on_cancel(7, 3)

Each listening process (a worker node) binds a datagram socket of its own
in ``<db>-wake/``, named by its pid and a random suffix, and removes it when
it stops. Every process that writes the database — a worker, ``servcore
serve``, an app that only enqueues, ``servcore enqueue`` — sends from its
SQLite writer thread, right after a commit and never before it (see
``store.sqlite.group_commit``), one datagram to each socket there but its
own: the messages the commit told (``notifier.base``: queue names that got
jobs, ``cancel:<id>:<lease token>`` for running jobs cancelled,
``finished:<id>`` for jobs done, failed or cancelled), one per line. A group
commit carries a burst of inserts, so a burst costs one send per listener,
not one per job. The finishes a commit told are handed to this process's own
listener too, on its loop (whoever waits on a job here hears of it the same
way wherever it ran).

Sending never blocks and never fails a write: ``MSG_DONTWAIT``; a listener
whose queue is full already has wake-ups waiting; a socket nobody is bound
to any more (its process died) is removed; any other error skips that
socket. The directory listing is kept and read again only when the
directory's mtime changes (one ``stat`` per send), and for a moment after a
change, since two changes within one tick of the file system's clock leave
one mtime.

A lost wake-up costs latency, never a job: every queue still looks at the
store on its own every ``poll_interval``, and a cancelled run stops when its
lease renewal fails (``lease / 3``).

Permissions: a socket gets the database file's permission bits, the
directory the same plus search where read is allowed: whoever may write the
database may wake its workers. Paths: a socket address holds at most 107
bytes; when ``<db>-wake/<name>`` is longer, the same file is addressed as
``/proc/self/fd/<the directory's fd>/<name>`` (Linux), so every process
still meets beside the database, whatever its path. Without ``/proc`` such
a long path gets no wake-ups (the poll still runs; the problem is logged).

Why sockets: measured by ``benchmarks/wake_mechanisms.py`` here (2 cores;
a writer process commits 1,000 rows at 200/s, a uvloop listener process
reads the new rows when told; medians of 3 runs; see BENCHMARKS.md):

- a datagram socket: commit → rows in hand p50 0.43 ms, p99 2.9 ms; the
  idle listener uses 0.0 % CPU, since nothing runs until the kernel wakes it;
- ``PRAGMA data_version`` every 1 ms: p50 0.90 ms, p99 2.0 ms, 2.9 % CPU
  idle, in every worker process, for ever; every 5 ms: p50 2.9 ms, 0.6 %.
  It says only that some other connection committed — this process's own
  claims and completions too, so a busy worker would wake itself after each
  of its own writes — and not which queue, nor which job was cancelled;
- inotify on the ``-wal`` file: 0.0 % idle, but p50 5.1 ms and a 200 ms
  tail: the WAL is written before the commit is visible (the wal-index in
  ``-shm`` is updated after, through ``mmap``, which inotify does not see),
  so the listener reads too early and finds the row only at the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from servcore.notifier.base import FINISHED_PREFIX, OnCancel, OnFinish, OnQueue, deliver

log = logging.getLogger("servcore.notifier")

SOCKET_SUFFIX = ".sock"
_ADDRESS_MAX = 107  # bytes in sun_path, less its terminating NUL
_DATAGRAM_MAX = 4096
# A listing taken within this long after the directory's mtime is read again
# next time: a change within the same tick of the file system's clock (a few
# ms at most) would leave the mtime as it was.
_RACY_NS = 100_000_000
_LOOK_EVERY = 10.0  # s: the listener checks that its socket is still there
_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
_READS_PER_WAKE = 256
_O_PATH: int = getattr(os, "O_PATH", os.O_RDONLY)  # Linux: an fd only to name the directory by


def wake_directory(database: Path) -> Path:
    """Where the listeners of ``database`` bind their sockets: ``<database>-wake/``,
    beside the file it really is (links resolved, so every process agrees)."""
    return Path(os.path.realpath(database) + "-wake")


def _modes(database: Path) -> tuple[int, int] | None:
    """(socket mode, directory mode) for ``database``'s audience, or None if unknown."""
    try:
        mode = os.stat(database).st_mode & 0o666
    except OSError:
        return None
    return mode, mode | (mode & 0o444) >> 2


class _Directory:
    """The wake directory, and addresses of sockets in it short enough to use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def address(self, name: str) -> str:
        full = os.path.join(self.path, name)
        if len(os.fsencode(full)) <= _ADDRESS_MAX:
            return full
        if self._fd is None:
            self._fd = os.open(self.path, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._fd}/{name}"

    def reset(self) -> None:
        """Forget the directory's fd (it may have been replaced)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def pack(messages: Collection[str]) -> list[bytes]:
    """``messages``, one per line, in as few datagrams of at most 4 KiB as fit."""
    datagrams: list[bytes] = []
    lines: list[bytes] = []
    size = -1  # the bytes of the lines joined: one newline fewer than lines
    for message in sorted(set(messages)):
        line = message.encode()
        if lines and size + 1 + len(line) > _DATAGRAM_MAX:
            datagrams.append(b"\n".join(lines))
            lines, size = [], -1
        lines.append(line)
        size += 1 + len(line)
    if lines:
        datagrams.append(b"\n".join(lines))
    return datagrams


def unpack(datagram: bytes) -> list[str]:
    return datagram.decode(errors="replace").split("\n")


class WakeSender:
    """Tells every listener of one database, but this store's own, what a
    commit told (called from the writer thread; see the module docstring)."""

    def __init__(self, database: Path) -> None:
        self._directory = _Directory(wake_directory(database))
        self._socket: socket.socket | None = None
        self._listed: tuple[int, int, int] | None = None  # (device, inode, mtime) listed
        self._racy = False
        self._names: list[str] = []
        # Sockets of this store's own listener: what it commits, it knows.
        # Replaced, never changed in place: the writer thread reads it.
        self._own: frozenset[str] = frozenset()
        self.sent = 0  # datagrams, for tests and curiosity
        # The writer thread sends, and so do callers of insert_jobs_blocking.
        self._lock = threading.Lock()
        # This store's own listener, for the finishes it commits (any thread).
        self._hear_own: Callable[[list[str]], None] | None = None

    def own(self, name: str, hear: Callable[[list[str]], None] | None = None) -> None:
        self._own = self._own | {name}
        self._hear_own = hear

    def disown(self, name: str) -> None:
        self._own = self._own - {name}
        self._hear_own = None

    def send(self, messages: Collection[str]) -> None:
        """Send ``messages`` to every other listener now, and the finishes among
        them to this store's own; never blocks, never raises."""
        with self._lock:
            self._send(messages)
        hear = self._hear_own
        if hear is not None:
            finishes = [message for message in messages if message.startswith(FINISHED_PREFIX)]
            if finishes:
                hear(finishes)

    def _send(self, messages: Collection[str]) -> None:
        try:
            names = self._listeners()
        except OSError:
            return  # no directory yet: nobody listens
        own = self._own
        targets = [name for name in names if name not in own]
        if not targets:
            return
        if self._socket is None:
            try:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            except OSError:
                return
        datagrams = pack(messages)
        for name in targets:
            try:
                address = self._directory.address(name)
            except OSError:
                return
            for datagram in datagrams:
                try:
                    self._socket.sendto(datagram, socket.MSG_DONTWAIT, address)
                except ConnectionRefusedError:
                    self._remove(name, address)  # its process is gone
                    break
                except OSError:
                    # Full (it has wake-ups waiting), just removed, or not ours
                    # to write: skip it.
                    break
                self.sent += 1

    def _listeners(self) -> list[str]:
        path = self._directory.path
        seen = os.stat(path)
        key = (seen.st_dev, seen.st_ino, seen.st_mtime_ns)
        if key != self._listed or self._racy:
            if self._listed is None or key[:2] != self._listed[:2]:
                self._directory.reset()  # another directory than the one we had open
            self._names = [name for name in os.listdir(path) if name.endswith(SOCKET_SUFFIX)]
            self._listed = key
            self._racy = time.time_ns() - seen.st_mtime_ns < _RACY_NS
        return self._names

    def _remove(self, name: str, address: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(address)
        with contextlib.suppress(ValueError):
            self._names.remove(name)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._directory.reset()
        self._listed = None


class _Listening:
    """One bound socket: its name, its address, the inode it was bound to."""

    def __init__(self, sock: socket.socket, name: str, address: str, inode: int) -> None:
        self.socket = sock
        self.name = name
        self.address = address
        self.inode = inode


class SqliteNotifier:
    """Hears what other processes commit to one SQLite database (see the module docstring)."""

    def __init__(self, database: Path, sender: WakeSender) -> None:
        self._database = database
        self._directory = _Directory(wake_directory(database))
        self._sender = sender
        self._problem: str | None = None
        self.address: str | None = None  # of the socket bound now, if any

    def problem(self) -> str | None:
        return self._problem

    async def run(
        self, on_queue: OnQueue, on_cancel: OnCancel, on_finish: OnFinish | None = None
    ) -> None:
        failures = 0
        while True:
            try:
                listening = self._bind()
            except OSError as error:
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                self._problem = f"cannot listen for wake-ups in {self._directory.path}: {error}"
                log.warning(
                    "%s; trying again in %.0f s (meanwhile idle queues look at the store "
                    "every poll_interval)",
                    self._problem,
                    delay,
                )
                failures += 1
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._problem = None
            try:
                await self._listen(listening, on_queue, on_cancel, on_finish)
            finally:
                self._close(listening)

    def _bind(self) -> _Listening:
        modes = _modes(self._database)
        directory = self._directory.path
        try:
            # Private until it has the database's audience (a chmod is not bound by umask).
            os.mkdir(directory, 0o700 if modes is not None else 0o777)
        except FileExistsError:
            pass
        else:
            if modes is not None:
                os.chmod(directory, modes[1])
        self._directory.reset()
        name = f"{os.getpid()}-{secrets.token_hex(4)}{SOCKET_SUFFIX}"
        address = self._directory.address(name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
            if modes is not None:
                os.chmod(address, modes[0])
            sock.setblocking(False)
            inode = os.stat(address).st_ino
        except OSError:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(address)
            raise
        return _Listening(sock, name, address, inode)

    async def _listen(
        self,
        listening: _Listening,
        on_queue: OnQueue,
        on_cancel: OnCancel,
        on_finish: OnFinish | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        sock = listening.socket

        def heard(messages: Collection[str]) -> None:
            for message in messages:
                try:
                    deliver(message, on_queue, on_cancel, on_finish)
                except ValueError:
                    log.debug("Ignored a wake-up message that means nothing: %r", message)

        def readable() -> None:
            messages: set[str] = set()
            for _ in range(_READS_PER_WAKE):
                try:
                    messages.update(unpack(sock.recv(65536)))
                except OSError:  # nothing more to read (BlockingIOError) or nothing to read from
                    break
            heard(messages)

        def heard_own(finishes: list[str]) -> None:  # from the writer thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(heard, finishes)

        self._sender.own(listening.name, heard_own if on_finish is not None else None)
        loop.add_reader(sock.fileno(), readable)
        self.address = listening.address
        try:
            on_queue("")  # every queue: what was committed before this socket was there
            while True:  # a socket unlinked under us (a /tmp cleaner) would hear nothing
                await asyncio.sleep(_LOOK_EVERY)
                if not self._still_there(listening):
                    break
            log.warning("Wake-up socket %s was removed; binding a new one", listening.address)
        finally:
            self.address = None
            loop.remove_reader(sock.fileno())
            self._sender.disown(listening.name)

    def _still_there(self, listening: _Listening) -> bool:
        try:
            return os.stat(listening.address).st_ino == listening.inode
        except OSError:
            return False

    def _close(self, listening: _Listening) -> None:
        if self._still_there(listening):
            with contextlib.suppress(OSError):
                os.unlink(listening.address)
        listening.socket.close()
        self._directory.reset()
