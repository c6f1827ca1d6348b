"""What Prometheus metrics cost: throughput with metrics on vs off, interleaved.

Runs ``throughput.py``'s measurement (20,000 no-op jobs, concurrency 256)
alternately with ``metrics=True`` (the default: every job counted, timed and
put in histograms) and ``metrics=False``, so that both see the same machine
noise, and reports each side's median and the difference.

    .venv/bin/python benchmarks/metrics_cost.py                   # memory + sqlite, 7 pairs
    .venv/bin/python benchmarks/metrics_cost.py --stores sqlite --pairs 11

Target: metrics cost under 10 % of throughput, on SQLite (the default, durable
store). On ``memory://`` a no-op job takes ~7 µs in all, so the ~2 µs of
counting shows as ~20 %; it is reported, not judged.
"""

from __future__ import annotations

import argparse
import logging
import sys

from _common import emit_json, median, print_machine, run_async
from throughput import one_run

TARGET = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_machine()
    results, failed = [], False
    for kind in args.stores.split(","):
        rates: dict[bool, list[float]] = {True: [], False: []}
        for pair in range(args.pairs):
            # Alternate which side goes first: neither always gets a warm machine.
            for metrics in (True, False) if pair % 2 == 0 else (False, True):
                result = run_async(
                    lambda k=kind, m=metrics: one_run(
                        k, args.concurrency, args.jobs, 1_000, 120.0, m
                    )
                )
                rates[metrics].append(result.jobs_per_s)
        on, off = median(rates[True]), median(rates[False])
        cost = (off - on) / off
        judged = kind != "memory"
        verdict = ("PASS" if cost < TARGET else "FAIL") if judged else "reported"
        failed |= judged and cost >= TARGET
        print(
            f"{kind:8} metrics off {off:9,.0f} jobs/s, on {on:9,.0f} jobs/s: "
            f"cost {cost:+.1%} (target < {TARGET:.0%}: {verdict})",
            flush=True,
        )
        results.append({"store": kind, "off": rates[False], "on": rates[True], "cost": cost})
    emit_json(args.json, {"benchmark": "metrics_cost", "results": results})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
