"""HTTP ``POST /jobs`` requests/s against a real ``servcore serve`` process.

Each run starts a fresh ``servcore serve --store sqlite:///<tmp>/http.db``
(``--store memory`` / ``sqlite-normal`` for comparison)
(workers in the same process, default handler), warms up with a short wrk
run, then measures with ``wrk -t1 -c32 -d10s`` on 127.0.0.1 (the settings of
MEASUREMENTS.md), waits until every accepted job is ``done`` (GET /stats,
with a deadline), and stops the server with SIGTERM.

    .venv/bin/python benchmarks/http_post.py
    .venv/bin/python benchmarks/http_post.py --concurrency 2,256 --runs 3

Needs ``wrk`` (``apt-get install -y wrk``). Target: >= 8,000 req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    SERVCORE,
    emit_json,
    free_port,
    http_json,
    median,
    print_machine,
    stop_process,
    wait_until_up,
)

TARGET = 8_000.0
LUA = BENCH_DIR / "post_job.lua"
STORES = {
    "sqlite": "sqlite:///{dir}/http.db",
    "sqlite-normal": "sqlite:///{dir}/http.db?synchronous=NORMAL",
    "memory": "memory://",
}


def run_wrk(url: str, threads: int, connections: int, duration: int) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
            result["req_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
            result["command"] = " ".join(command)
            return result
    raise RuntimeError(f"no summary from wrk:\n{out}")


def wait_all_done(base: str, deadline_s: float) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    stats: dict[str, Any] = {}
    while time.monotonic() - start < deadline_s:
        stats = http_json("GET", f"{base}/stats")
        if stats["queued"] == 0 and stats["running"] == 0:
            return stats, time.monotonic() - start
        time.sleep(0.05)
    return stats, time.monotonic() - start


def one_run(args: argparse.Namespace, concurrency: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [
            str(SERVCORE),
            "serve",
            "--store",
            STORES[args.store].format(dir=tmp),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVCORE_")}
        env.pop("PORT", None)
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                wait_until_up(f"{base}/health", proc)
                if args.warmup > 0:
                    run_wrk(f"{base}/jobs", args.threads, args.connections, args.warmup)
                    wait_all_done(base, args.deadline)
                result = run_wrk(f"{base}/jobs", args.threads, args.connections, args.duration)
                stats, drain_s = wait_all_done(base, args.deadline)
            finally:
                code = stop_process(proc)
        server_log = log_path.read_text(errors="replace")
    result.update(
        server_command=" ".join(command),
        concurrency=concurrency,
        stats=stats,
        drain_after_s=drain_s,
        all_done=stats.get("queued") == 0
        and stats.get("running") == 0
        and stats.get("done") == stats.get("total"),
        server_exit=code,
        server_log_tail=server_log[-2000:],
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before measuring")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--concurrency",
        default="default",
        help="servcore --concurrency values, comma-separated; 'default' = the CPU count",
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="max s to wait for jobs")
    parser.add_argument("--store", choices=sorted(STORES), default="sqlite")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 1 <= args.duration <= 120:
        parser.error("--runs must be 1..20 and --duration 1..120")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not SERVCORE.exists():
        print(f"{SERVCORE} not found: run `make` targets to build .venv first", file=sys.stderr)
        return 2

    print_machine()
    summary = []
    failed = False
    for value in args.concurrency.split(","):
        concurrency = None if value == "default" else int(value)
        runs = []
        for _ in range(args.runs):
            result = one_run(args, concurrency)
            runs.append(result)
            errors = sum(
                result[k]
                for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
            )
            print(
                f"  concurrency {value:>7}: {result['req_per_s']:8,.0f} req/s  "
                f"p50 {result['p50_us'] / 1000:5.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  "
                f"errors {errors}  jobs total {result['stats'].get('total')} "
                f"done {result['stats'].get('done')} (drained {result['drain_after_s']:.2f} s "
                f"after wrk)  all done: {result['all_done']}",
                flush=True,
            )
            if not result["all_done"] or errors:
                print(result["server_log_tail"], file=sys.stderr)
        rate = median([r["req_per_s"] for r in runs])
        p50 = median([r["p50_us"] / 1000 for r in runs])
        p99 = median([r["p99_us"] / 1000 for r in runs])
        ok = rate >= TARGET and all(r["all_done"] for r in runs)
        failed |= not ok
        print(
            f"POST /jobs {args.store} concurrency {value}: median {rate:,.0f} req/s, "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"(target >= {TARGET:,.0f} req/s: {'PASS' if ok else 'FAIL'})",
            flush=True,
        )
        print(f"  command: {runs[0]['command']}", flush=True)
        summary.append(
            {
                "concurrency": value,
                "median_req_per_s": rate,
                "median_p50_ms": p50,
                "median_p99_ms": p99,
                "target": TARGET,
                "pass": ok,
                "runs": runs,
            }
        )
    emit_json(args.json, {"benchmark": "http_post", "results": summary})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
