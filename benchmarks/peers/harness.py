"""The three phases every library goes through, run the same way for each.

``drain``: a client process enqueues ``count`` jobs one call at a time (the
enqueue rate), then ``workers`` worker processes start and run them all
(processing rate = count / (last completion - first start)). The first start
is the earliest handler start on record; the last completion is when the
harness first sees the last record (it polls the list every 5 ms).

``latency``: one worker process is started and warmed up (the client's
warm-up jobs have run, then it idles 1 s); the client then offers ``count``
jobs at ``rate`` a second; latency = handler start - the enqueue call.

After each phase the workers are stopped and every job must be on record
exactly once; a phase that fails this has failed (and is not run again); one
that does not finish is run again up to ``retries`` times, its failures kept.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peers.adapters.base import Peer, process_env
from peers.place import CONCURRENCY_ENV, Place
from peers.processes import WorkerGroup
from peers.records import Ledger, Record, tally

STALL_S = 30.0  # no new record for this long: the phase has failed
POLL_S = 0.005  # how often the harness looks at the ledger
WARMUP_JOBS = 20


@dataclass
class Phase:
    """What one phase measured (its JSON is the raw record of the run)."""

    peer: str
    run: int
    kind: str  # "drain" or "latency"
    workers: int
    ok: bool = False
    error: str | None = None
    enqueue: dict[str, float] = field(default_factory=dict)  # the client's report
    processing_rate: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    exactly_once: str = ""
    counted_wrong: bool = False  # a job ran not exactly once: never retried
    earlier_failures: list[str] = field(default_factory=list)  # attempts before this one
    worker_exit_codes: list[int | None] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Harness:
    def __init__(self, scratch: Path, concurrency: int, retries: int) -> None:
        self.scratch = scratch
        self.concurrency = concurrency
        self.retries = retries
        self.ledger = Ledger()

    def _place(self, run: int, peer: Peer, tag: str) -> Place:
        run_id = f"r{run}_{peer.name}_{peer.backend[:2]}_{tag}_{secrets.token_hex(3)}"
        directory = self.scratch / run_id
        directory.mkdir()
        return Place(run_id, directory)

    def _workers(self, peer: Peer, place: Place, count: int) -> WorkerGroup:
        env = process_env(place, {**peer.env(place), CONCURRENCY_ENV: str(self.concurrency)})
        return WorkerGroup(
            peer.worker_command(place, self.concurrency),
            count,
            env=env,
            cwd=place.directory,
            stop_signal=peer.stop_signal,
        )

    def _client(
        self, peer: Peer, place: Place, count: int, rate: float | None = None, warmup: int = 0
    ) -> dict[str, float]:
        command = [sys.executable, "-m", "peers.client", peer.path, "--count", str(count)]
        if rate is not None:
            command += ["--rate", str(rate), "--warmup", str(warmup)]
        done = subprocess.run(
            command,
            env=process_env(place, peer.env(place)),
            cwd=place.directory,
            capture_output=True,
            text=True,
            timeout=120 + count * 0.05,
            check=False,
        )
        if done.returncode != 0:
            raise PhaseFailed(f"client exited {done.returncode}: {_tail(done.stderr)}")
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def _await_records(self, place: Place, count: int, group: WorkerGroup) -> float:
        """When (``time.time()``) the ``count``-th record was first seen."""
        seen, progress_at = -1, time.monotonic()
        while True:
            have = self.ledger.count(place.record_key)
            if have >= count:
                return time.time()
            if have != seen:
                seen, progress_at = have, time.monotonic()
            elif time.monotonic() - progress_at > STALL_S:
                raise PhaseFailed(
                    f"stalled: {have} of {count} records, none new for {STALL_S:.0f} s; "
                    f"worker 0 log: {group.tail(0)}"
                )
            broken = group.exited()
            if broken is not None:
                raise PhaseFailed(broken)
            time.sleep(POLL_S)

    def _check(self, phase: Phase, place: Place, count: int) -> list[Record]:
        records = self.ledger.records(place.record_key)
        verdict = tally(records, count)
        phase.exactly_once = verdict.describe()
        if not verdict.exactly_once:
            phase.counted_wrong = True
            raise PhaseFailed(f"not exactly once: {verdict.describe()}")
        return [record for record in records if record.number >= 0]

    def drain(self, peer: Peer, run: int, count: int, workers: int) -> Phase:
        return self._attempts(lambda: self._drain(peer, run, count, workers))

    def latency(self, peer: Peer, run: int, count: int, rate: float) -> Phase:
        return self._attempts(lambda: self._latency(peer, run, count, rate))

    def _attempts(self, once: Callable[[], Phase]) -> Phase:
        """A phase, run again (up to ``retries`` more times) if it broke for
        another reason than a job run not exactly once — on this machine the
        test suites terminate every client of database ``test`` now and then.
        The failed attempts are kept with the phase and printed."""
        earlier: list[str] = []
        while True:
            phase = once()
            phase.earlier_failures = earlier
            if phase.ok or phase.counted_wrong or len(earlier) >= self.retries:
                return phase
            earlier.append(phase.error or "unknown")
            print(f"  ({phase.peer} {phase.kind}: {phase.error}; running it again)", flush=True)

    def _drain(self, peer: Peer, run: int, count: int, workers: int) -> Phase:
        phase = Phase(peer.label, run, "drain", workers)
        place = self._place(run, peer, f"w{workers}")

        def body() -> None:
            phase.enqueue = self._client(peer, place, count)
            with self._workers(peer, place, workers) as group:
                seen_all = self._await_records(place, count, group)
            phase.worker_exit_codes = group.exit_codes
            records = self._check(phase, place, count)
            first_start = min(record.started_at for record in records)
            phase.processing_rate = count / (seen_all - first_start)

        self._run(phase, peer, place, body)
        return phase

    def _latency(self, peer: Peer, run: int, count: int, rate: float) -> Phase:
        phase = Phase(peer.label, run, "latency", 1)
        place = self._place(run, peer, "lat")

        def body() -> None:
            with self._workers(peer, place, 1) as group:
                phase.enqueue = self._client(peer, place, count, rate=rate, warmup=WARMUP_JOBS)
                self._await_records(place, count + WARMUP_JOBS, group)
            phase.worker_exit_codes = group.exit_codes
            records = self._check(phase, place, count)
            waits = sorted((r.started_at - r.enqueued_at) * 1000 for r in records)
            phase.latency_ms = {
                "p50": percentile(waits, 0.50),
                "p99": percentile(waits, 0.99),
                "max": waits[-1],
            }

        self._run(phase, peer, place, body)
        return phase

    def _run(self, phase: Phase, peer: Peer, place: Place, body: Callable[[], None]) -> None:
        phase.load_before = os.getloadavg()
        started = time.monotonic()
        try:
            peer.prepare(place)
            body()
            phase.ok = True
        except PhaseFailed as failure:
            phase.error = str(failure)
        except Exception as error:  # a library's or a store's failure is this phase's result
            phase.error = f"{type(error).__name__}: {error}"
        finally:
            self._clean_up(peer, place)
            phase.seconds = time.monotonic() - started
            phase.load_after = os.getloadavg()

    def _clean_up(self, peer: Peer, place: Place) -> None:
        try:
            peer.discard(place)
        except Exception as error:
            print(f"  (could not clean up {place.run_id}: {error!r})", flush=True)
        self.ledger.forget(place.record_key)


class PhaseFailed(Exception):
    pass


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
