"""Handlers that ``tests/integration/test_process_pool.py`` runs in worker processes.

They live at module level so the pool can pickle them by reference and the
worker processes can import them. Handlers that need the test to see them
start write their pid to ``job.payload["pid_file"]`` first.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from servcore import Cancel, Discard, Job, Retry


def announce(job: Job) -> int:
    """Write this process's pid to the job's ``pid_file`` (atomically)."""
    path = Path(job.payload["pid_file"])
    partial = path.with_suffix(".partial")
    partial.write_text(str(os.getpid()))
    partial.replace(path)
    return os.getpid()


def echo(job: Job) -> dict[str, Any]:
    return {
        "payload": job.payload,
        "pid": os.getpid(),
        "name": multiprocessing.current_process().name,
    }


def retry(job: Job) -> None:
    raise Retry(2.5, "not yet")


def discard(job: Job) -> None:
    raise Discard("bad job")


def cancel(job: Job) -> None:
    raise Cancel("no longer wanted")


def fail(job: Job) -> None:
    raise ValueError(f"cannot handle job {job.id}")


def fail_silently(job: Job) -> None:
    raise RuntimeError


def unserialisable(job: Job) -> complex:
    return complex(1, 2)


def spin(job: Job) -> None:
    announce(job)
    while True:
        pass


def block(job: Job) -> None:
    announce(job)
    time.sleep(3600)


def exit_3(job: Job) -> None:
    os._exit(3)


def kill_self(job: Job) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def rendezvous(job: Job) -> int:
    """Announce, then wait (up to 10 s) for the other job's pid file."""
    pid = announce(job)
    other = Path(job.payload["other_pid_file"])
    deadline = time.monotonic() + 10
    while not other.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never appeared")
        time.sleep(0.005)
    return pid
