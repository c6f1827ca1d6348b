"""Run servcore and its peers the same way, then print the table and save
the raw runs as JSON. See README.md beside this file.

    benchmarks/peers/run.sh                     # 10,000 jobs, 3 runs, every library
    benchmarks/peers/run.sh --quick             # 2,000 jobs, 1 run
    benchmarks/peers/run.sh --only servcore,huey
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from peers.adapters.base import REPO_ROOT, Peer
from peers.harness import Harness, Phase
from peers.records import Ledger
from peers.registry import PEERS
from peers.report import markdown, plain, summarize, table
from peers.stores import server_version

BACKENDS = ("sqlite", "postgresql", "redis")
# Reported besides each peer: what its numbers also depend on.
LIBRARIES = ("redis", "hiredis", "asyncpg", "psycopg", "psycopg-binary", "uvloop")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so every worker group's ``with`` block stops its workers.
    raise SystemExit(128 + signum)


def environment(peers: list[Peer]) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    distributions = sorted({peer.distribution for peer in peers} | set(LIBRARIES))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: version(name) for name in distributions},
        "sqlite": sqlite3.sqlite_version,
        "postgresql": server_version(),
        "redis": Ledger().server_info(),
        "git": _git_head(),
    }


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 1 run (a smoke check)")
    parser.add_argument("--only", help="libraries to run, e.g. servcore,huey")
    parser.add_argument("--runs", type=int, help="runs per library (default 3; --quick 1)")
    parser.add_argument("--jobs", type=int, help="jobs per drain (default 10,000; --quick 2,000)")
    parser.add_argument("--latency-jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: jobs offered a second")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once per worker")
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/)")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run a phase again this often if it breaks (never for a wrong count)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (workers' logs)"
    )
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    jobs = args.jobs or (2000 if args.quick else 10_000)
    names = set(args.only.split(",")) if args.only else {peer.name for peer in PEERS}
    unknown = names - {peer.name for peer in PEERS}
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}: pick from {[p.name for p in PEERS]}")
    peers = [peer for peer in PEERS if peer.name in names]

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    info = environment(peers)
    print(
        f"# {info['nproc']} CPU ({info['cpu']}), Python {info['python']}; "
        f"{jobs} jobs, {runs} run(s), concurrency {args.concurrency}",
        flush=True,
    )
    scratch = Path(tempfile.mkdtemp(prefix="peers-"))
    phases: list[Phase] = []
    try:
        harness = Harness(scratch, args.concurrency, args.retries)
        for run in range(1, runs + 1):
            # Each run starts with another library, so none always goes first.
            shift = (run - 1) % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                for phase in (
                    harness.drain(peer, run, jobs, 1),
                    harness.drain(peer, run, jobs, 2),
                    harness.latency(peer, run, args.latency_jobs, args.rate),
                ):
                    phases.append(phase)
                    print(_progress(phase), flush=True)
    finally:
        if args.keep:
            print(f"# scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    summaries = [summarize(peer, phases) for peer in peers]
    print()
    for backend in BACKENDS:
        rows = table(summaries, backend)
        if rows:
            print(f"## {backend}\n{plain(rows)}\n")
    for summary in summaries:
        for retried in summary.retried:
            print(f"retried (the first attempt broke) {retried}")
    failed = [failure for summary in summaries for failure in summary.failures]
    for failure in failed:
        print(f"FAILED {failure}")

    output = args.output or REPO_ROOT / "benchmarks" / "results" / _filename()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "settings": {
                    "jobs": jobs,
                    "runs": runs,
                    "latency_jobs": args.latency_jobs,
                    "rate": args.rate,
                    "concurrency": args.concurrency,
                },
                "environment": info,
                "peers": {
                    peer.label: {"durability": peer.durability, "settings": peer.settings}
                    for peer in peers
                },
                "phases": [phase.to_json() for phase in phases],
                "markdown": {
                    backend: markdown(rows)
                    for backend in BACKENDS
                    if (rows := table(summaries, backend))
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"raw runs: {output}")
    return 1 if failed else 0


def _progress(phase: Phase) -> str:
    what = f"run {phase.run} {phase.peer:<26} {phase.kind:<7} workers={phase.workers}"
    if not phase.ok:
        return f"{what}  FAILED: {phase.error}"
    if phase.kind == "drain":
        return (
            f"{what}  enqueue {phase.enqueue['rate']:8,.0f}/s  "
            f"processing {phase.processing_rate or 0:8,.0f}/s  ({phase.seconds:.1f} s)"
        )
    return (
        f"{what}  p50 {phase.latency_ms['p50']:7.2f} ms  p99 {phase.latency_ms['p99']:7.2f} ms  "
        f"max {phase.latency_ms['max']:7.1f} ms  (enqueue call p99 "
        f"{phase.enqueue['call_p99_ms']:.1f} ms, max {phase.enqueue['call_max_ms']:.1f} ms)"
    )


def _filename() -> str:
    return f"peers-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"# took {time.monotonic() - started:.0f} s")
    sys.exit(code)
