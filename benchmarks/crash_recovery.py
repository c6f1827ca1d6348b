"""Crash recovery: kill -9 a ``servcore serve`` on SQLite mid-run, restart it.

Each run: start ``servcore serve crash_tasks:service`` (see crash_tasks.py:
every execution appends the job id to a log file with O_APPEND) on a fresh
SQLite file; a few concurrent HTTP submitters POST ``--jobs`` jobs; when
``--kill-at`` of them have been accepted the server gets SIGKILL. The
submitters wait, the server is restarted on the same file and port, and the
submitters finish the rest (a request whose answer was lost in the crash is
sent again: it may have been stored, so it can give one extra job record).

Reported, from the restart:
- up: until GET /health answers;
- recovered: until every job accepted *before* the kill has run;
- all done: until every job is accepted and the store has none queued or running.
And: jobs that ran twice (ids with more than one log line), jobs accepted but
never run (must be 0), and jobs rescued at start-up.

    .venv/bin/python benchmarks/crash_recovery.py
    .venv/bin/python benchmarks/crash_recovery.py --jobs 5000 --sleep-ms 20 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    SERVCORE,
    RawHttpConnection,
    emit_json,
    free_port,
    http_json,
    median,
    print_machine,
    stop_process,
    wait_until_up,
)


@dataclass
class Submission:
    pending: collections.deque[int]
    accepted: dict[int, int] = field(default_factory=dict)  # index -> job id
    before_kill: set[int] = field(default_factory=set)  # job ids accepted before the kill
    unknown: set[int] = field(default_factory=set)  # indexes whose answer was lost
    up: asyncio.Event = field(default_factory=asyncio.Event)
    kill_done: asyncio.Event = field(default_factory=asyncio.Event)
    killed: bool = False


def read_log(path: Path) -> collections.Counter[int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(int(line) for line in text.splitlines() if line.strip())


def start_server(
    db: Path, port: int, log_path: Path, server_log: Path, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVCORE_")}
    env.pop("PORT", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    env["SERVCORE_BENCH_LOG"] = str(log_path)
    env["SERVCORE_BENCH_SLEEP_MS"] = str(args.sleep_ms)
    command = [
        str(SERVCORE),
        "serve",
        "crash_tasks:service",
        "--store",
        f"sqlite:///{db}",
        "--port",
        str(port),
        "--concurrency",
        str(args.concurrency),
        "--log-level",
        "warning",
    ]
    with server_log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


async def submitter(
    port: int,
    state: Submission,
    kill_after: int,
    proc_box: list[subprocess.Popen[bytes]],
    deadline: float,
) -> None:
    connection = RawHttpConnection("127.0.0.1", port)
    try:
        while state.pending and time.monotonic() < deadline:
            await state.up.wait()
            index = state.pending.popleft()
            try:
                status, body = await connection.request(
                    "POST", "/jobs", {"payload": {"task": "append", "i": index}}
                )
            except OSError:
                # The answer was lost (the server died): send it again later. The
                # kill clears ``up`` first, so this waits for the restart.
                state.unknown.add(index)
                state.pending.append(index)
                await asyncio.sleep(0.01)
                continue
            if status != 202:
                raise RuntimeError(f"POST /jobs answered {status}: {body}")
            accept(state, index, body["job_id"], kill_after, proc_box)
    finally:
        await connection.close()


def accept(
    state: Submission,
    index: int,
    job_id: int,
    kill_after: int,
    proc_box: list[subprocess.Popen[bytes]],
) -> None:
    state.accepted[index] = job_id
    if not state.killed:
        state.before_kill.add(job_id)
        if len(state.accepted) >= kill_after:
            state.killed = True
            state.up.clear()
            os.kill(proc_box[0].pid, signal.SIGKILL)
            state.kill_done.set()


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="servcore-bench-") as tmp:
        db, log_path = Path(tmp) / "crash.db", Path(tmp) / "executions.log"
        server_log = Path(tmp) / "server.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + args.deadline
        first = start_server(db, port, log_path, server_log, args)
        proc_box = [first]
        second: subprocess.Popen[bytes] | None = None
        try:
            await asyncio.to_thread(wait_until_up, f"{base}/health", first)
            state = Submission(pending=collections.deque(range(args.jobs)))
            state.up.set()
            workers = [
                asyncio.create_task(
                    submitter(port, state, int(args.jobs * args.kill_at), proc_box, deadline)
                )
                for _ in range(args.submitters)
            ]
            # Wait for the kill, then for the process to be gone.
            try:
                await asyncio.wait_for(state.kill_done.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise RuntimeError("the kill point was never reached") from None
            await asyncio.to_thread(first.wait, 10)
            ran_at_kill = read_log(log_path)
            in_store_at_kill = len(state.before_kill)
            not_run_at_kill = len(state.before_kill - set(ran_at_kill))

            restart = time.monotonic()
            second = start_server(db, port, log_path, server_log, args)
            proc_box[0] = second
            up_s = await asyncio.to_thread(wait_until_up, f"{base}/health", second)
            state.up.set()

            recovered_s = float("nan")
            all_done_s = float("nan")
            stats: dict[str, Any] = {}
            while time.monotonic() < deadline:
                ran = read_log(log_path)
                if recovered_s != recovered_s and state.before_kill <= set(ran):
                    recovered_s = time.monotonic() - restart
                if not state.pending and all(w.done() for w in workers):
                    stats = await asyncio.to_thread(http_json, "GET", f"{base}/stats")
                    if stats["queued"] == 0 and stats["running"] == 0:
                        all_done_s = time.monotonic() - restart
                        if recovered_s != recovered_s:
                            recovered_s = all_done_s
                        break
                await asyncio.sleep(0.005)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            if first.poll() is None:
                first.kill()
            if second is not None:
                stop_process(second)
        executions = read_log(log_path)
        log_text = server_log.read_text(errors="replace")
    accepted_ids = set(state.accepted.values())
    twice = sorted(job_id for job_id, n in executions.items() if n > 1)
    rescued = sum(int(m) for m in re.findall(r"Rescued (\d+) job", log_text))
    return {
        "jobs": args.jobs,
        "accepted_before_kill": in_store_at_kill,
        "not_yet_run_at_kill": not_run_at_kill,
        "restart_up_s": up_s,
        "recovered_s": recovered_s,
        "all_done_s": all_done_s,
        "stats": stats,
        "executions": sum(executions.values()),
        "ran_twice": len(twice),
        "ran_twice_ids": twice[:20],
        "accepted_never_run": len(accepted_ids - set(executions)),
        "lost_answers_resent": len(state.unknown),
        "rescued_at_start": rescued,
        "server_log_tail": log_text[-1500:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--submitters", type=int, default=8)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction accepted, 0..1")
    parser.add_argument("--concurrency", type=int, default=64, help="servcore --concurrency")
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="handler time per job")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=120.0, help="max s per run")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 10 <= args.jobs <= 200_000 or not 0 < args.kill_at < 1:
        parser.error("--runs 1..20, --jobs 10..200,000, --kill-at in (0, 1)")

    print_machine()
    print(
        f"# {args.jobs} jobs, {args.submitters} submitters, kill -9 at {args.kill_at:.0%} "
        f"accepted, concurrency {args.concurrency}, handler {args.sleep_ms} ms, {args.runs} runs",
        flush=True,
    )
    runs = []
    broken = False
    for _ in range(args.runs):
        result = asyncio.run(one_run(args))
        runs.append(result)
        print(
            f"  restart→up {result['restart_up_s'] * 1000:6.0f} ms  "
            f"→pre-kill jobs run {result['recovered_s'] * 1000:6.0f} ms  "
            f"→all done {result['all_done_s'] * 1000:6.0f} ms  | "
            f"at kill: {result['accepted_before_kill']} accepted, "
            f"{result['not_yet_run_at_kill']} not yet run | rescued {result['rescued_at_start']}, "
            f"ran twice {result['ran_twice']}, never ran {result['accepted_never_run']}, "
            f"answers lost+resent {result['lost_answers_resent']}, "
            f"store done/total {result['stats'].get('done')}/{result['stats'].get('total')}",
            flush=True,
        )
        if result["accepted_never_run"] or result["all_done_s"] != result["all_done_s"]:
            broken = True
            print(result["server_log_tail"], file=sys.stderr)
    summary = {
        "median_restart_up_s": median([r["restart_up_s"] for r in runs]),
        "median_recovered_s": median([r["recovered_s"] for r in runs]),
        "median_all_done_s": median([r["all_done_s"] for r in runs]),
        "median_ran_twice": median([r["ran_twice"] for r in runs]),
        "total_never_run": sum(r["accepted_never_run"] for r in runs),
    }
    print(
        f"crash recovery: median restart→up {summary['median_restart_up_s'] * 1000:.0f} ms, "
        f"→pre-kill jobs run {summary['median_recovered_s'] * 1000:.0f} ms, "
        f"→all done {summary['median_all_done_s'] * 1000:.0f} ms; ran twice (median) "
        f"{summary['median_ran_twice']:.0f}; accepted but never run {summary['total_never_run']}",
        flush=True,
    )
    emit_json(args.json, {"benchmark": "crash_recovery", "summary": summary, "runs": runs})
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
