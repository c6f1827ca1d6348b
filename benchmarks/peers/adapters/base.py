"""What every library adapter provides: the same five things, so the harness
runs every library the same way.

- ``prepare(place)`` / ``discard(place)``: make the phase's store (tables,
  schema) before any process uses it, and remove it afterwards;
- ``worker_command(place, concurrency)``: the library's own worker CLI, one
  process, ``concurrency`` jobs at once;
- ``client(place)``: in the client process, the library's normal enqueue
  call for one job, opened and closed around the whole phase;
- ``stop_signal``: what asks that worker to stop gracefully.
"""

from __future__ import annotations

import abc
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import ClassVar, Literal

from peers.place import Place

Backend = Literal["sqlite", "postgresql", "redis"]

# enqueue(number, enqueued_at): store one job durably (as the library allows).
Enqueue = Callable[[int, float], Awaitable[None]]

BIN = Path(sys.executable).parent
PEERS_DIR = Path(__file__).resolve().parent.parent
BENCHMARKS_DIR = PEERS_DIR.parent
REPO_ROOT = BENCHMARKS_DIR.parent


class Peer(abc.ABC):
    name: ClassVar[str]  # as in --only, e.g. "huey"
    distribution: ClassVar[str]  # the PyPI name whose version is reported
    backend: ClassVar[Backend]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    # One line each for the report: what an enqueue commits, and what was set.
    durability: ClassVar[str]
    settings: ClassVar[str]

    def env(self, place: Place) -> dict[str, str]:
        """Variables the library reads, for the client and the workers."""
        return {}

    @abc.abstractmethod
    def prepare(self, place: Place) -> None: ...

    @abc.abstractmethod
    def discard(self, place: Place) -> None: ...

    @abc.abstractmethod
    def worker_command(self, place: Place, concurrency: int) -> list[str]: ...

    @property
    def label(self) -> str:
        return f"{self.name} ({self.backend})"

    @property
    def path(self) -> str:
        """Where :func:`load` finds this adapter: ``module:Class``."""
        return f"{type(self).__module__}:{type(self).__name__}"

    @abc.abstractmethod
    def client(self, place: Place) -> AbstractAsyncContextManager[Enqueue]: ...


def load(path: str) -> Peer:
    """The adapter at ``module:Class`` (a client process loads just its own)."""
    module, _, name = path.partition(":")
    peer = getattr(importlib.import_module(module), name)()
    if not isinstance(peer, Peer):
        raise TypeError(f"{path} is not a Peer")
    return peer


def process_env(place: Place, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process of a phase: this one's, the package
    importable, the phase's place, and what the library reads."""
    return {**os.environ, "PYTHONPATH": str(BENCHMARKS_DIR), **place.to_env(), **extra}


def run_command(command: Sequence[str], place: Place, env: dict[str, str] | None = None) -> None:
    """A set-up command (a library's ``install`` or ``migrate``), run in the
    phase's directory; its output is shown only if it fails."""
    done = subprocess.run(
        command,
        env=process_env(place, env or {}),
        cwd=place.directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
