"""Run every benchmark, one after the other (``make bench``).

    .venv/bin/python benchmarks/run_all.py            # full: >= 3 runs each
    .venv/bin/python benchmarks/run_all.py --quick    # 1 run each, for a smoke check
    .venv/bin/python benchmarks/run_all.py --only throughput,latency
    .venv/bin/python benchmarks/run_all.py --only postgres   # needs SERVCORE_BENCH_PG's server

Each script prints its own lines; the JSON of every script goes to
``--out`` (default ``benchmarks/results/``). Exit status is non-zero if any
benchmark missed a target or failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH_DIR, print_machine

# name -> the runs: (script in benchmarks/, its arguments)
BENCHMARKS: dict[str, list[tuple[str, list[str]]]] = {
    "throughput": [("throughput", ["--concurrency", "64,256,1024"])],
    "http_post": [("http_post", ["--concurrency", "default,256"])],
    "latency": [
        ("latency", ["--mode", "python"]),
        ("latency", ["--mode", "http"]),
        ("latency", ["--mode", "processes", "--jobs", "1000", "--interval", "5"]),
    ],
    # How a SQLite listener can hear of another process's commit (chose notifier.sqlite).
    "wake_mechanisms": [("wake_mechanisms", [])],
    "crash_recovery": [("crash_recovery", []), ("crash_recovery", ["--sleep-ms", "50"])],
    # SQLite and PostgreSQL (the latter needs SERVCORE_BENCH_PG's server).
    "bulk_insert": [("bulk_insert", [])],
    "executors": [("executors", [])],
    "metrics_cost": [("metrics_cost", [])],
    # PostgreSQL on loopback (SERVCORE_BENCH_PG); each run in a fresh schema, dropped after.
    "postgres": [
        ("throughput", ["--stores", "postgres", "--concurrency", "256"]),
        ("postgres", ["--part", "workers,latency,crash"]),
    ],
}
TIME_LIMIT_S = 1800


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print_machine()
    outcomes: list[tuple[str, int, float]] = []
    for name in names:
        if name == "http_post" and shutil.which("wrk") is None:
            print("skipping http_post: wrk is not installed (apt-get install -y wrk)")
            outcomes.append((name, 2, 0.0))
            continue
        for number, (script, extra) in enumerate(BENCHMARKS[name]):
            label = name if len(BENCHMARKS[name]) == 1 else f"{name}#{number + 1}"
            command = [sys.executable, str(BENCH_DIR / f"{script}.py"), *extra]
            if args.quick:
                command += ["--runs", "1"]
            command += ["--json", str(out / f"{label.replace('#', '-')}.json")]
            print(f"\n=== {label}: {' '.join(command[1:])}", flush=True)
            started = time.monotonic()
            try:
                code = subprocess.run(command, timeout=TIME_LIMIT_S, check=False).returncode
            except subprocess.TimeoutExpired:
                code = 124
            outcomes.append((label, code, time.monotonic() - started))

    print("\n=== summary")
    for label, code, seconds in outcomes:
        verdict = {0: "ok", 1: "missed a target / broken", 2: "skipped"}.get(code, f"exit {code}")
        print(f"  {label:18} {verdict:26} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
