"""Issue 10's stress run, big form: mixed bursts round after round, invariants after each.

A cluster of real processes on one store — ``servcore serve --no-workers``
(the API node), two ``servcore worker --concurrency 8`` and one
``--concurrency 256``, all ``--lease 5`` — gets ordinary traffic first
(round 0: reads of every kind and single ``POST /jobs``), then ``--rounds``
bursts of ``--jobs-per-round`` jobs (``POST /jobs/batch`` of 1,000 over
``--connections`` connections, 50 single ``POST /jobs``) mixed with reads of
every kind and control verbs (pause/resume, cancel/retry of extra jobs and
of jobs already done). After each round, once nothing is queued or running:
every job done, executions == jobs (each job ran exactly once), no job
rescued or failed, no request unanswered, 5xx or slower than ``--bound`` s.
See ``tests/stress/mixed_bursts.py``; ``tests/stress/test_mixed_bursts.py``
runs a bounded form in CI.

PostgreSQL: a fresh schema ``bench_<random>`` (never analyzed) on the
loopback server in ``SERVCORE_BENCH_PG``, dropped afterwards. SQLite: a file
in a temporary directory. The directory (executions file, process logs) is
kept when an invariant breaks, or with ``--keep``.

    .venv/bin/python benchmarks/stress.py --store postgres --rounds 20 --jobs-per-round 10000
    .venv/bin/python benchmarks/stress.py --store sqlite --rounds 5 --jobs-per-round 100000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, emit_json, pg_drop_schema, pg_new_schema, pg_url, print_machine

sys.path.insert(0, str(ROOT))  # for tests.stress

from tests.stress.mixed_bursts import (
    InvariantBroken,
    RoundNumbers,
    StressConfig,
    run_mixed_bursts,
)

HEADER = (
    f"{'round':>5} {'jobs':>8} {'executions':>10} {'done':>9} {'failed':>7} {'rescued':>7} "
    f"{'seconds':>8} {'burst s':>8} {'requests':>8} {'max ms':>8} {'warnings':>8}"
)


def row(numbers: RoundNumbers) -> str:
    return (
        f"{numbers.round:>5} {numbers.jobs:>8,} {numbers.executions:>10,} {numbers.done:>9,} "
        f"{numbers.failed:>7,} {numbers.rescued:>7,} {numbers.seconds:>8.2f} "
        f"{numbers.burst_seconds:>8.2f} {numbers.requests:>8,} "
        f"{numbers.max_latency * 1000:>8.0f} {numbers.warnings:>8}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["postgres", "sqlite"], required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs-per-round", type=int, default=10_000)
    parser.add_argument("--singles-per-round", type=int, default=50)
    parser.add_argument("--connections", type=int, default=8, help="concurrent batch POSTs")
    parser.add_argument("--warmup-singles", type=int, default=300, help="round 0")
    parser.add_argument("--warmup-reads", type=int, default=20, help="round 0, of each kind")
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--bound", type=float, default=10.0, help="max s for any request")
    parser.add_argument("--settle-timeout", type=float, default=300.0, help="max s per round")
    parser.add_argument("--keep", action="store_true", help="keep the logs and executions file")
    parser.add_argument("--json", help="write the rounds to this file")
    args = parser.parse_args()
    config = StressConfig(
        rounds=args.rounds,
        jobs_per_round=args.jobs_per_round,
        singles_per_round=args.singles_per_round,
        connections=args.connections,
        warmup_singles=args.warmup_singles,
        warmup_reads=args.warmup_reads,
        lease=args.lease,
        bound=args.bound,
        settle_timeout=args.settle_timeout,
    )
    print_machine()
    workdir = Path(tempfile.mkdtemp(prefix="servcore-stress-"))
    schema = pg_new_schema() if args.store == "postgres" else None
    url = pg_url(schema) if schema else f"sqlite:///{workdir / 'jobs.db'}"
    print(f"# {args.store}: {config}", flush=True)
    print(HEADER, flush=True)
    start = time.monotonic()
    failure: InvariantBroken | None = None
    rounds: list[RoundNumbers] = []
    try:
        rounds = run_mixed_bursts(url, workdir, config, lambda n: print(row(n), flush=True))
    except InvariantBroken as broken:
        failure, rounds = broken, broken.rounds
        print(row(broken.numbers) + "  <- broken", flush=True)
    finally:
        if schema:
            asyncio.run(pg_drop_schema(schema))
    elapsed = time.monotonic() - start
    emit_json(
        args.json,
        {
            "store": args.store,
            "config": config,
            "rounds": rounds + ([failure.numbers] if failure else []),
            "broken": failure.broken if failure else [],
            "seconds": elapsed,
        },
    )
    if failure is not None:
        print(f"\nFAIL after {elapsed:.1f} s: round {failure.numbers.round} broke:")
        for invariant in failure.broken:
            print(f"  - {invariant[:2000]}")
        print(f"logs and executions kept in {workdir}")
        return 1
    jobs = sum(numbers.jobs for numbers in rounds)
    print(f"\nOK: {len(rounds) - 1} rounds + warm-up, {jobs:,} jobs, {elapsed:.1f} s")
    if args.keep:
        print(f"logs and executions kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
