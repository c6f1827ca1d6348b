"""How one process can hear of another's commit to a SQLite file: three ways compared.

A writer process commits one row at a time (``synchronous=FULL``, WAL) at
``--rate`` commits/s, noting ``time.time()`` in the row just before its
INSERT; a listener process (uvloop, as ``servcore worker`` runs) waits for
news by one mechanism, reads the new rows when told, and notes for each the
time from the writer's note to the listener having the row in hand. Then,
with no writes, the listener's CPU use over ``--idle`` seconds
(``/proc/<pid>/stat`` utime + stime).

- ``socket``: the listener binds a UNIX datagram socket in ``<db>-wake/``;
  after each commit the writer stats the directory (re-listing it when it
  changed) and sends one datagram to each socket there (what servcore does).
- ``data_version:N``: the listener runs ``PRAGMA data_version`` every N ms
  on its own connection and reads when the number moved.
- ``inotify``: the listener watches the ``-wal`` file for ``IN_MODIFY``
  (ctypes; no package) and reads on each event.

    .venv/bin/python benchmarks/wake_mechanisms.py
    .venv/bin/python benchmarks/wake_mechanisms.py --mechanisms socket,data_version:5 --runs 1

This chose the mechanism in ``servcore.notifier.sqlite`` (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, emit_json, median, percentile, print_machine, run_async


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


# -- the listener (a process of its own) -------------------------------------


async def listen(mechanism: str, db: Path, out: Path) -> None:
    loop = asyncio.get_running_loop()
    conn = sqlite3.connect(db, isolation_level=None)
    seen = 0
    checking: list[asyncio.Task[None]] = []
    latencies: list[float] = []
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, done.set)  # the writer is through

    def read_new() -> None:
        nonlocal seen
        rows = conn.execute("SELECT id, at FROM t WHERE id > ?", (seen,)).fetchall()
        now = time.time()
        for row_id, at in rows:
            latencies.append((now - at) * 1000)
            seen = max(seen, row_id)

    if mechanism == "socket":
        directory = Path(f"{db}-wake")
        os.makedirs(directory, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(directory / f"{os.getpid()}.sock"))
        sock.setblocking(False)

        def readable() -> None:
            while True:
                try:
                    sock.recv(65536)
                except BlockingIOError:
                    break
            read_new()

        loop.add_reader(sock.fileno(), readable)
    elif mechanism == "inotify":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK)
        in_modify = 0x2
        if libc.inotify_add_watch(fd, f"{db}-wal".encode(), in_modify) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

        def changed() -> None:
            while True:
                try:
                    os.read(fd, 4096)
                except BlockingIOError:
                    break
            read_new()

        loop.add_reader(fd, changed)
    elif mechanism.startswith("data_version:"):
        every = float(mechanism.split(":")[1]) / 1000
        version = conn.execute("PRAGMA data_version").fetchone()[0]

        async def check() -> None:
            nonlocal version
            while True:
                await asyncio.sleep(every)
                now_version = conn.execute("PRAGMA data_version").fetchone()[0]
                if now_version != version:
                    version = now_version
                    read_new()

        checking.append(asyncio.create_task(check()))
    else:
        raise SystemExit(f"unknown mechanism {mechanism!r}")
    out.with_suffix(".ready").touch()
    await done.wait()
    read_new()
    for task in checking:
        task.cancel()
    with open(out, "w") as sink:  # noqa: ASYNC230 (the run is over)
        json.dump(latencies, sink)


# -- the writer, and one run ---------------------------------------------------


class SocketSender:
    """The sending half of ``socket``: what servcore's sender does per commit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.mtime = -1
        self.targets: list[str] = []

    def send(self) -> None:
        mtime = os.stat(self.directory).st_mtime_ns
        if mtime != self.mtime:
            self.mtime = mtime
            names = os.listdir(self.directory)
            self.targets = [str(self.directory / n) for n in names if n.endswith(".sock")]
        for target in self.targets:
            with contextlib.suppress(OSError):
                self.sock.sendto(b"default", socket.MSG_DONTWAIT, target)


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"listener exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.01)


def one_run(mechanism: str, commits: int, rate: float, idle_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="servcore-wake-") as tmp:
        db = Path(tmp) / "wake.db"
        out = Path(tmp) / "latencies.json"
        conn = connect(db)
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at REAL)")
        listener = subprocess.Popen(
            [sys.executable, __file__, "--listen", mechanism, "--db", str(db), "--out", str(out)]
        )
        try:
            wait_for(out.with_suffix(".ready"), listener)
            time.sleep(0.5)  # let it settle before the idle measurement
            cpu0, wall0 = cpu_seconds(listener.pid), time.monotonic()
            time.sleep(idle_s)
            idle_cpu = (cpu_seconds(listener.pid) - cpu0) / (time.monotonic() - wall0) * 100
            sender = SocketSender(Path(f"{db}-wake")) if mechanism == "socket" else None
            cpu0, wall0 = cpu_seconds(listener.pid), time.monotonic()
            origin = time.perf_counter()
            for i in range(commits):
                pause = origin + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (at) VALUES (?)", (time.time(),))
                conn.execute("COMMIT")
                if sender is not None:
                    sender.send()
            busy_cpu = (cpu_seconds(listener.pid) - cpu0) / (time.monotonic() - wall0) * 100
            time.sleep(0.2)
            listener.send_signal(signal.SIGUSR1)
            listener.wait(30)
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
        latencies = sorted(json.loads(out.read_text()))
    return {
        "n": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "late_over_50ms": sum(1 for value in latencies if value > 50),
        "idle_cpu_pct": idle_cpu,
        "busy_cpu_pct": busy_cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mechanisms", default="socket,data_version:1,data_version:5,inotify")
    parser.add_argument("--commits", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0, help="commits per second")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listen:
        run_async(lambda: listen(args.listen, Path(args.db), Path(args.out)))
        return 0
    print_machine()
    print(
        f"# {args.commits} commits at {args.rate:g}/s, idle CPU over {args.idle:g} s, "
        f"{args.runs} runs each (medians)",
        flush=True,
    )
    results = {}
    for mechanism in args.mechanisms.split(","):
        runs = [one_run(mechanism, args.commits, args.rate, args.idle) for _ in range(args.runs)]
        summary = {key: median([run[key] for run in runs]) for key in runs[0]}
        results[mechanism] = {"median": summary, "runs": runs}
        print(
            f"  {mechanism:16} p50 {summary['p50_ms']:7.3f} ms  p99 {summary['p99_ms']:8.3f} ms  "
            f"max {summary['max_ms']:8.3f} ms  late>50ms {summary['late_over_50ms']:5.0f}  "
            f"CPU idle {summary['idle_cpu_pct']:5.2f} %  at {args.rate:g}/s "
            f"{summary['busy_cpu_pct']:5.2f} %",
            flush=True,
        )
    emit_json(args.json, {"benchmark": "wake_mechanisms", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
