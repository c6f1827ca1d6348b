"""Mixed bursts against a cluster of real ``servcore`` processes, round after round.

The cluster: one API node (``servcore serve --no-workers``) and three worker
processes, two claiming at ``--concurrency 8`` and one at ``256``, all with
``--lease 5``, on one store (PostgreSQL or a shared SQLite file). Every run of
task ``record`` appends "job-id node" to ``RECORD_FILE``.

Round 0 is the ordinary traffic that comes first in production: reads of
every kind and single ``POST /jobs``, no batches, while the table is tiny.
It runs every hot statement on each process's pooled connections more than
five times, which is when PostgreSQL may start reusing a generic plan made
for a tiny table (issue 10: such a plan made completions and lease renewals
scan the table, so leases ran out under a burst, live nodes' jobs were
rescued, ran again and ended failed). Each round after it is a burst (see
:mod:`tests.stress.http_load`). After every round, once the
store says nothing is queued or running (waited for with a deadline), the
invariants are checked; the first round that breaks one raises
:class:`InvariantBroken`, naming each broken invariant:

- no statement waits forever: every request answered, non-5xx, within ``bound`` s;
- answers as documented: every status and control-verb answer as the API says;
- every job done: the counted jobs all ``done``, nothing queued or running,
  the extra jobs all ``cancelled``;
- no failed jobs;
- executions == jobs: each counted job ran exactly once, nothing else ran;
- no rescue without a dead node: every process alive, no job rescued or
  attempted twice, no rescue, stale-token or lost-run line in any log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.processes import ServerProcess, servcore_serve, servcore_worker
from tests.stress.evidence import Executions, LogWatch, StoreRows, store_rows
from tests.stress.http_load import BROKEN, NO_ANSWER, BurstPlan, BurstResult, burst

WORKERS = (("w8a", 8), ("w8b", 8), ("w256", 256))


@dataclass(frozen=True, slots=True)
class StressConfig:
    rounds: int = 20
    jobs_per_round: int = 10_000
    batch_size: int = 1_000  # the API's maximum
    singles_per_round: int = 50  # of jobs_per_round
    extras_per_round: int = 3  # + 2 by batch: parked, cancelled, retried, cancelled
    reads_per_kind: int = 3  # at least, per round
    connections: int = 8  # concurrent POST /jobs/batch
    warmup_reads: int = 20  # round 0: of each kind
    warmup_singles: int = 300  # round 0, one at a time
    lease: float = 5.0
    bound: float = 10.0  # seconds any request may take
    settle_timeout: float = 120.0  # seconds for a round's jobs to finish


@dataclass(frozen=True, slots=True)
class RoundNumbers:
    round: int
    jobs: int  # counted jobs accepted this round
    executions: int  # runs recorded this round
    done: int  # counted jobs done in the store, all rounds so far
    failed: int  # counted jobs failed in the store
    rescued: int  # counted jobs rescued at least once
    seconds: float  # burst + settle
    burst_seconds: float
    requests: int
    max_latency: float  # slowest request of the round, seconds
    warnings: int  # log lines at warning level that raised no alarm


@dataclass(slots=True)
class Totals:
    counted: int = 0
    extras: int = 0
    done_sample: list[int] = field(default_factory=list)


class InvariantBroken(AssertionError):
    def __init__(self, numbers: RoundNumbers, broken: list[str], rounds: list[RoundNumbers]):
        self.numbers, self.broken, self.rounds = numbers, broken, rounds
        super().__init__(
            f"round {numbers.round} (after {len(rounds)} clean) broke {len(broken)} "
            "invariant(s):\n  " + "\n  ".join(broken) + f"\n  numbers: {numbers}"
        )


def run_mixed_bursts(
    url: str,
    workdir: Path,
    config: StressConfig | None = None,
    on_round: Callable[[RoundNumbers], None] | None = None,
    env: dict[str, str] | None = None,
) -> list[RoundNumbers]:
    """Round 0 (ordinary traffic), then ``config.rounds`` bursts; the numbers of each.

    ``workdir`` receives the executions file and the processes' logs; ``env``
    is added to the processes' environment."""
    config = config or StressConfig()
    rounds: list[RoundNumbers] = []
    with cluster(url, workdir, config.lease, env) as nodes:
        totals = Totals()
        for number in range(config.rounds + 1):
            numbers, broken = _round(nodes, _plan(number, config, totals), config, totals)
            if broken:
                raise InvariantBroken(numbers, broken, rounds)
            rounds.append(numbers)
            if on_round is not None:
                on_round(numbers)
    return rounds


def _plan(number: int, config: StressConfig, totals: Totals) -> BurstPlan:
    if number == 0:
        batched, singles, reads = 0, config.warmup_singles, config.warmup_reads
    else:
        singles = min(config.singles_per_round, config.jobs_per_round)
        batched, reads = config.jobs_per_round - singles, config.reads_per_kind
    full, rest = divmod(batched, config.batch_size)
    return BurstPlan(
        number=number,
        batches=[config.batch_size] * full + ([rest] if rest else []),
        singles=singles,
        extras=config.extras_per_round,
        done=totals.done_sample,
        reads_per_kind=reads,
        connections=config.connections,
        bound=config.bound,
    )


class Cluster:
    def __init__(self, url: str, api: ServerProcess, workers: list[ServerProcess], record: Path):
        self.url = url
        self.api = api
        self.processes = {"api": api} | {
            name: w for (name, _), w in zip(WORKERS, workers, strict=True)
        }
        self.executions = Executions(record)
        self.logs = [LogWatch(name, node.log) for name, node in self.processes.items()]


@contextmanager
def cluster(
    url: str, workdir: Path, lease: float, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """The API node and the three workers, up and registered; killed on exit."""
    record = workdir / "executions.txt"
    env = {**(env or {}), "RECORD_FILE": str(record)}
    common = ["tests.process_tasks:service", "--store", url, "--lease", str(lease)]
    common += ["--log-level", "warning"]
    with ExitStack() as stack:
        api = stack.enter_context(
            servcore_serve(workdir, *common, "--no-workers", "--node", "api", env=env, name="api")
        )
        api.wait_ready()
        workers = [
            stack.enter_context(
                servcore_worker(
                    workdir,
                    *common,
                    "--node",
                    name,
                    "--concurrency",
                    str(concurrency),
                    env=env,
                    name=name,
                )
            )
            for name, concurrency in WORKERS
        ]
        nodes = Cluster(url, api, workers, record)
        _wait_until(lambda: _registered(nodes), 30, "the three workers in GET /nodes")
        yield nodes


def _registered(nodes: Cluster) -> bool:
    for name, process in nodes.processes.items():
        if process.process.poll() is not None:
            raise AssertionError(f"{name} exited at start:\n{process.output()}")
    listed = {entry["node"] for entry in httpx.get(f"{nodes.api.url}/nodes", timeout=5).json()}
    return {name for name, _ in WORKERS} <= listed


def _round(
    nodes: Cluster, plan: BurstPlan, config: StressConfig, totals: Totals
) -> tuple[RoundNumbers, list[str]]:
    start = time.monotonic()
    result = asyncio.run(burst(nodes.api.port, plan))
    burst_seconds = time.monotonic() - start
    totals.counted += len(result.accepted)
    totals.extras += len(result.extras)
    stats, slowest, unsettled = _settle(nodes, config)
    seconds = time.monotonic() - start
    new_runs = nodes.executions.read_new()
    rows = store_rows(nodes.url)
    alarms: list[str] = []
    warnings: list[str] = []
    for log in nodes.logs:
        found, other = log.read_new()
        alarms += found
        warnings += other
    broken = _broken(nodes, config, totals, result, stats, unsettled, new_runs, rows, alarms)
    numbers = RoundNumbers(
        round=plan.number,
        jobs=len(result.accepted),
        executions=sum(new_runs.values()),
        done=rows.done,
        failed=rows.failed,
        rescued=rows.rescued,
        seconds=round(seconds, 2),
        burst_seconds=round(burst_seconds, 2),
        requests=len(result.answers),
        max_latency=round(max([slowest, *(a.seconds for a in result.answers)]), 3),
        warnings=len(warnings),
    )
    accepted = sorted(result.accepted)
    totals.done_sample = accepted[:: max(1, len(accepted) // 20)][:20]
    return numbers, broken


def _settle(nodes: Cluster, config: StressConfig) -> tuple[dict[str, int], float, str | None]:
    """Poll GET /stats until nothing is queued or running: (last stats, slowest poll,
    why it did not settle or None)."""
    deadline = time.monotonic() + config.settle_timeout
    stats: dict[str, int] = {}
    slowest = 0.0
    while True:
        asked = time.monotonic()
        try:
            stats = httpx.get(f"{nodes.api.url}/stats", timeout=config.bound).json()
        except httpx.HTTPError as error:
            return stats, time.monotonic() - asked, f"GET /stats failed while settling: {error!r}"
        slowest = max(slowest, time.monotonic() - asked)
        if stats["queued"] == 0 and stats["running"] == 0:
            return stats, slowest, None
        if time.monotonic() > deadline:
            return stats, slowest, f"not finished {config.settle_timeout:.0f} s after the burst"
        time.sleep(0.05)


def _broken(
    nodes: Cluster,
    config: StressConfig,
    totals: Totals,
    result: BurstResult,
    stats: dict[str, int],
    unsettled: str | None,
    new_runs: dict[int, int],
    rows: StoreRows,
    alarms: list[str],
) -> list[str]:
    broken: list[str] = []

    def check(ok: bool, invariant: str, detail: str) -> None:
        if not ok:
            broken.append(f"{invariant}: {detail}")

    waited = [a for a in result.answers if a.status in (NO_ANSWER, BROKEN) or a.status >= 500]
    slow = [a for a in result.answers if a.seconds > config.bound]
    stats_hung = unsettled is not None and unsettled.startswith("GET /stats")
    check(
        not (waited or slow or stats_hung),
        "no statement waits forever",
        f"{len(waited)} request(s) unanswered or 5xx, {len(slow)} over {config.bound} s: "
        + "; ".join(str(a) for a in (waited + slow)[:5])
        + (f"; {unsettled}" if stats_hung else ""),
    )
    odd = [a for a in result.answers if a.unexpected and a not in waited]
    check(
        not (odd or result.problems),
        "answers as documented",
        "; ".join([*(f"{a}: {a.body[:200]!r}" for a in odd[:5]), *result.problems[:5]]),
    )
    check(
        unsettled is None
        and stats.get("done") == totals.counted
        and stats.get("cancelled") == totals.extras
        and stats.get("total") == totals.counted + totals.extras,
        "every job done",
        f"{unsettled or 'settled'}; GET /stats {stats}; expected done {totals.counted}, "
        f"cancelled {totals.extras}",
    )
    check(
        stats.get("failed") == 0 and rows.failed == 0,
        "no failed jobs",
        f"GET /stats failed {stats.get('failed')}, store {rows}",
    )
    accepted = set(result.accepted)
    missing = [job_id for job_id in accepted if nodes.executions.runs[job_id] == 0]
    twice = sorted(job_id for job_id, count in nodes.executions.runs.items() if count > 1)
    strangers = sorted(set(new_runs) - accepted)
    check(
        not (missing or twice or strangers) and nodes.executions.total == totals.counted,
        "executions == jobs",
        f"{nodes.executions.total} executions for {totals.counted} jobs; "
        f"{len(missing)} never ran {sorted(missing)[:10]}, {len(twice)} ran more than once "
        f"{twice[:10]}, {len(strangers)} ran but were not this round's {strangers[:10]}",
    )
    dead = [name for name, node in nodes.processes.items() if node.process.poll() is not None]
    check(
        not dead and rows.rescued == 0 and rows.reattempted == 0 and not alarms,
        "no rescue without a dead node",
        f"dead processes {dead}; store {rows}; {len(alarms)} alarming log line(s): "
        + " | ".join(alarms[:5]),
    )
    return broken


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
