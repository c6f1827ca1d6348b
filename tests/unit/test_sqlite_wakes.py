"""SQLite's wake-up sockets on their own: the sender and the listener of
``servcore.notifier.sqlite``, without a database (only its file name)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from servcore.notifier import sqlite as wakes
from servcore.notifier.base import cancel_message
from servcore.notifier.sqlite import SqliteNotifier, WakeSender, pack, unpack, wake_directory
from tests.conftest import wait_for


class Heard:
    """What a listener was told, in order."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.cancels: list[tuple[int, int]] = []

    def on_queue(self, queue: str) -> None:
        self.queues.append(queue)

    def on_cancel(self, job_id: int, lease_token: int) -> None:
        self.cancels.append((job_id, lease_token))


@asynccontextmanager
async def listening(
    database: Path, sender: WakeSender | None = None
) -> AsyncIterator[tuple[SqliteNotifier, Heard]]:
    """A listener of ``database`` running (bound once it has woken every queue)."""
    notifier = SqliteNotifier(database, sender or WakeSender(database))
    heard = Heard()
    task = asyncio.create_task(notifier.run(heard.on_queue, heard.on_cancel))
    try:
        await wait_for(lambda: heard.queues == [""], within=5, message="the listener bound")
        yield notifier, heard
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def sockets(database: Path) -> list[str]:
    return sorted(os.listdir(wake_directory(database)))


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.db"
    path.touch()
    return path


def test_messages_are_packed_once_each_into_datagrams_of_at_most_4_kib() -> None:
    assert pack(["email", "email", "", cancel_message(7, 3)]) == [b"\ncancel:7:3\nemail"]
    many = [cancel_message(job_id, 1) for job_id in range(2_000)]
    datagrams = pack(many)
    assert len(datagrams) > 1
    assert all(len(datagram) <= 4096 for datagram in datagrams)
    assert sorted(message for d in datagrams for message in unpack(d)) == sorted(many)


def test_a_send_with_no_listener_does_nothing(database: Path) -> None:
    sender = WakeSender(database)
    sender.send({"default"})  # no directory yet
    wake_directory(database).mkdir()
    sender.send({"default"})  # nobody in it
    assert sender.sent == 0
    sender.close()


async def test_a_listener_hears_queues_and_cancels_sent_after_it_bound(database: Path) -> None:
    async with listening(database) as (notifier, heard):
        assert notifier.address is not None
        assert sockets(database) == [os.path.basename(notifier.address)]
        sender = WakeSender(database)
        sender.send({"email", cancel_message(7, 3)})
        await wait_for(lambda: heard.cancels == [(7, 3)], within=5, message="the cancel")
        await wait_for(lambda: "email" in heard.queues, within=5, message="the queue")
        assert sender.sent == 1
        sender.close()


async def test_every_listener_hears_but_the_senders_own(database: Path) -> None:
    own_sender = WakeSender(database)
    async with (
        listening(database, own_sender) as (_, own),
        listening(database) as (_, other),
        listening(database) as (_, third),
    ):
        own_sender.send({"email"})
        await wait_for(lambda: other.queues == ["", "email"], within=5, message="the other")
        await wait_for(lambda: third.queues == ["", "email"], within=5, message="the third")
        assert own_sender.sent == 2
        assert own.queues == [""]  # what its own store commits, its node already knows
    own_sender.close()


def test_the_socket_of_a_dead_listener_is_removed(database: Path) -> None:
    directory = wake_directory(database)
    directory.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "1-dead.sock"))
    dead.close()  # as a killed process leaves it: the file, nobody bound
    (directory / "notes.txt").write_text("not a socket of ours")
    sender = WakeSender(database)
    sender.send({"default"})
    assert sorted(os.listdir(directory)) == ["notes.txt"]
    assert sender.sent == 0
    sender.close()


def test_a_listener_that_reads_nothing_never_blocks_the_sender(database: Path) -> None:
    directory = wake_directory(database)
    directory.mkdir()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(str(directory / "1-stuck.sock"))
    sender = WakeSender(database)
    started = time.monotonic()
    for _ in range(5_000):
        sender.send({"default"})
    assert time.monotonic() - started < 5
    assert 0 < sender.sent < 5_000  # its queue filled up; the rest were skipped
    assert os.listdir(directory) == ["1-stuck.sock"]  # full is not dead
    stuck.close()
    sender.close()


def test_the_listing_is_read_again_only_when_the_directory_changed(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = wake_directory(database)
    directory.mkdir()
    first = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first.bind(str(directory / "1-first.sock"))
    listings: list[str] = []
    real_listdir: Callable[[str | Path], list[str]] = os.listdir

    def counted(path: str | Path) -> list[str]:
        listings.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(wakes.os, "listdir", counted)
    # Changed long ago: the listing stays good until the mtime moves.
    old = time.time_ns() - 60 * 10**9
    os.utime(directory, ns=(old, old))
    sender = WakeSender(database)
    for _ in range(3):
        sender.send({"default"})
    assert len(listings) == 1
    assert sender.sent == 3

    # A listener that comes within the same tick of the file system's clock
    # leaves the mtime as it was: a listing taken that close to its mtime is
    # read again next time.
    os.utime(directory)
    mtime = os.stat(directory).st_mtime_ns
    sender.send({"default"})
    second = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    second.bind(str(directory / "2-second.sock"))
    os.utime(directory, ns=(mtime, mtime))
    sender.send({"default"})
    second.setblocking(False)
    assert second.recv(100) == b"default"
    first.close()
    second.close()
    sender.close()


async def test_a_long_database_path_meets_beside_the_file_through_proc(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    database = deep / "jobs.db"
    database.touch()
    assert len(str(wake_directory(database) / "1234567-0123abcd.sock")) > 107
    async with listening(database) as (notifier, heard):
        assert notifier.address is not None
        assert notifier.address.startswith("/proc/self/fd/")
        assert len(sockets(database)) == 1
        sender = WakeSender(database)
        sender.send({"email"})
        await wait_for(lambda: "email" in heard.queues, within=5, message="the queue")
        sender.close()
    assert sockets(database) == []


async def test_the_socket_has_the_databases_audience(database: Path) -> None:
    os.chmod(database, 0o640)
    async with listening(database) as (notifier, _):
        assert notifier.address is not None
        assert stat.S_IMODE(os.stat(notifier.address).st_mode) == 0o640
        assert stat.S_IMODE(os.stat(wake_directory(database)).st_mode) == 0o750


async def test_stopping_removes_the_socket(database: Path) -> None:
    async with listening(database):
        assert len(sockets(database)) == 1
    assert sockets(database) == []


async def test_a_socket_removed_under_the_listener_is_bound_again(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakes, "_LOOK_EVERY", 0.01)
    async with listening(database) as (notifier, heard):
        assert notifier.address is not None
        os.unlink(notifier.address)
        # Bound again, it wakes every queue once more: what it missed is looked at.
        await wait_for(lambda: heard.queues == ["", ""], within=5, message="a new socket")
        assert len(sockets(database)) == 1
        sender = WakeSender(database)
        sender.send({"email"})
        await wait_for(lambda: "email" in heard.queues, within=5, message="the queue")
        sender.close()


async def test_a_listener_that_cannot_bind_says_why_and_tries_again(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakes, "_RETRY_DELAYS", (0.01,))
    in_the_way = wake_directory(database)
    in_the_way.write_text("a file where the directory should be")
    notifier = SqliteNotifier(database, WakeSender(database))
    heard = Heard()
    task = asyncio.create_task(notifier.run(heard.on_queue, heard.on_cancel))
    try:
        await wait_for(lambda: notifier.problem() is not None, within=5, message="a problem")
        assert "cannot listen for wake-ups" in str(notifier.problem())
        in_the_way.unlink()
        await wait_for(lambda: heard.queues == [""], within=5, message="bound at last")
        assert notifier.problem() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
