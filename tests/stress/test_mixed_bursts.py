"""Issue 10's stress run, bounded for CI: 20 mixed bursts on each store.

Each store gets a cluster of real processes (an API node, two workers
claiming at concurrency 8 and one at 256, lease 5 s), ordinary traffic first,
then 20 rounds of 10,000 jobs (batches of 1,000 and single POSTs) mixed with
reads of every kind and control verbs; after every round the invariants of
:mod:`tests.stress.mixed_bursts` must hold. On PostgreSQL the schema is new
and never analyzed (autovacuum is off), as in the issue. About 50 s per store
on 2 cores; ``benchmarks/stress.py`` runs bigger forms.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgres import postgres_url, require_postgres
from tests.stress.mixed_bursts import StressConfig, run_mixed_bursts

pytestmark = pytest.mark.slow

CI_FORM = StressConfig(rounds=20, jobs_per_round=10_000, settle_timeout=60)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_20_mixed_bursts_run_every_job_once_with_no_rescue_and_no_failure(
    backend: str, tmp_path: Path
) -> None:
    if backend == "postgres":
        require_postgres()
        url = postgres_url()
    else:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    rounds = run_mixed_bursts(url, tmp_path, CI_FORM)
    assert [numbers.round for numbers in rounds] == list(range(CI_FORM.rounds + 1))
    jobs = CI_FORM.warmup_singles + CI_FORM.rounds * CI_FORM.jobs_per_round
    assert rounds[-1].done == jobs
    assert sum(numbers.executions for numbers in rounds) == jobs
