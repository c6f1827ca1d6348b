"""The enqueue client: a process of its own, as an app enqueuing jobs is.

    python -m peers.client peers.adapters.huey_peer:HueySqlite --count 10000
    python -m peers.client peers.adapters.huey_peer:HueySqlite --count 1000 --rate 200 --warmup 20

Enqueues ``--count`` jobs one call at a time, each awaited before the next,
with the library's normal enqueue call; each job carries its number and the
wall-clock time just before its call. With ``--rate`` the calls follow an
absolute schedule (``rate`` a second, no drift); ``--warmup`` jobs (numbered
-1, -2, …) go first and must have run before the timed ones start. Prints one
JSON line: how long the calls took (all, and each: p50, p99, max) and how
late the schedule ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop

from peers.adapters.base import Enqueue, load
from peers.place import Place
from peers.records import Ledger

WARMUP_DEADLINE_S = 60.0
IDLE_AFTER_WARMUP_S = 1.0


async def warm_up(enqueue: Enqueue, place: Place, count: int) -> None:
    """Enqueue ``count`` jobs and wait until they have run (the workers are
    up), then leave the workers idle for a moment."""
    for number in range(1, count + 1):
        await enqueue(-number, time.time())
    ledger = Ledger()
    deadline = time.monotonic() + WARMUP_DEADLINE_S
    while ledger.count(place.record_key) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"warm-up: {count} jobs not run within {WARMUP_DEADLINE_S} s")
        await asyncio.sleep(0.01)
    await asyncio.sleep(IDLE_AFTER_WARMUP_S)


async def main(path: str, count: int, rate: float | None, warmup: int) -> dict[str, float]:
    peer = load(path)
    place = Place.from_env()
    async with peer.client(place) as enqueue:
        if warmup:
            await warm_up(enqueue, place, warmup)
        late = 0.0
        calls: list[float] = []
        started = time.perf_counter()
        for number in range(count):
            if rate is not None:
                due = started + number / rate
                ahead = due - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                else:
                    late = max(late, -ahead)
            before = time.perf_counter()
            await enqueue(number, time.time())
            calls.append(time.perf_counter() - before)
        seconds = time.perf_counter() - started
    calls.sort()
    return {
        "count": count,
        "seconds": seconds,
        "rate": count / seconds,
        "late_s": late,
        "call_p50_ms": calls[len(calls) // 2] * 1000,
        "call_p99_ms": calls[int(len(calls) * 0.99)] * 1000,
        "call_max_ms": calls[-1] * 1000,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", help="an adapter, e.g. peers.adapters.huey_peer:HueySqlite")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, help="jobs per second (default: back to back)")
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args()
    result = uvloop.run(main(args.peer, args.count, args.rate, args.warmup))
    print(json.dumps(result), flush=True)
