"""A SQLite store on a tiny volume that fills up (a 3 MiB tmpfs).

Before, the write-ahead log held nearly every job (it was checkpointed only
every 4 MiB), so once the volume was full no checkpoint could ever finish,
space freed later went to the log again, and a server could not start on
the full volume at all (WAL mode could not create its shared-memory file).
Needs root to mount the tmpfs: skipped, saying so, where that is not allowed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from servcore.jobs import JobStatus, NewJob
from servcore.store import SqliteStore, StoreError
from tests.conformance.support import new_job
from tests.processes import servcore_serve

VOLUME = "3m"
PAD = "x" * 2000  # a job of about 2 KiB: one per 4 KiB page
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a 3 MiB tmpfs needs root")
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME}", "tmpfs", str(volume)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {VOLUME} tmpfs here: {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "--lazy", str(volume)], check=False)


def fill_with_a_file(path: Path, size: int | None = None) -> None:
    """Write zeros to ``path`` until ``size`` bytes, or until the volume is full."""
    block = b"\0" * 4096
    written = 0
    with path.open("wb", buffering=0) as sink:
        while size is None or written < size:
            try:
                written += sink.write(block)
            except OSError:
                return


async def insert_until_full(store: SqliteStore) -> int:
    """Jobs inserted one at a time until the store refuses for want of space."""
    inserted = 0
    refusal = ""
    while not refusal:
        try:
            await store.insert_jobs([a_job()], NOW)
            inserted += 1
        except StoreError as error:
            refusal = str(error)
    assert "full" in refusal
    return inserted


def a_job() -> NewJob:
    return new_job(payload={"task": "work", "pad": PAD}, run_at=NOW)


def log_size(volume: Path) -> int:
    wal = volume / "jobs.db-wal"
    return wal.stat().st_size if wal.exists() else 0


async def test_a_full_volume_recovers_and_the_log_never_holds_the_space(tiny_volume: Path) -> None:
    db = tiny_volume / "jobs.db"
    fill_with_a_file(tiny_volume / "other", 1024 * 1024)
    store = SqliteStore(f"sqlite:///{db}", str(db))
    await store.open()
    try:
        first = await insert_until_full(store)
        # The jobs are in the database, not in a log no checkpoint could move.
        assert log_size(tiny_volume) <= 512 * 1024
        # Space frees: the next writes use it, and the log stays small.
        (tiny_volume / "other").unlink()
        more = await insert_until_full(store)
        assert more >= 150  # 1 MiB at 4 KiB a job, less what the log may keep
        assert log_size(tiny_volume) <= 512 * 1024
    finally:
        await store.close()
    # Full again: the store opens, and every job accepted is there.
    reopened = SqliteStore(f"sqlite:///{db}", str(db))
    await reopened.open()
    try:
        assert (await reopened.count_jobs(NOW)).queued == first + more
    finally:
        await reopened.close()


def test_the_server_starts_on_a_full_volume_with_its_database(
    tiny_volume: Path, tmp_path: Path
) -> None:
    db = tiny_volume / "jobs.db"

    async def prepare() -> None:
        store = SqliteStore(f"sqlite:///{db}", str(db))
        await store.open()
        await store.insert_jobs([a_job()], NOW)
        await store.close()

    asyncio.run(prepare())
    fill_with_a_file(tiny_volume / "other")  # not a byte left
    with servcore_serve(tmp_path, "--store", f"sqlite:///{db}", "--no-workers") as server:
        server.wait_ready()
        old = httpx.get(f"{server.url}/jobs/1")
        assert old.status_code == 200
        assert old.json()["status"] == JobStatus.QUEUED
        accepted = httpx.post(f"{server.url}/jobs", json={"payload": {"task": "new"}})
        assert accepted.status_code == 202, accepted.text
