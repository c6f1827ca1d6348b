"""Helpers for testing code that uses servcore (shipped for users' tests too)."""

from __future__ import annotations

from servcore.clock import FakeClock
from servcore.service import Service

__all__ = ["FakeClock", "drain"]


async def drain(service: Service, *, max_rounds: int = 10_000) -> int:
    """Run every job that is due now, round after round, until none is left.

    Works on a service started with workers; each round claims and runs what
    is due at the service clock's ``now``. Returns how many jobs ran.
    """
    ran = 0
    for _ in range(max_rounds):
        now = service.clock.now()
        this_round = 0
        for runtime in service.runtimes.values():
            this_round += await runtime.run_once(now)
        if this_round == 0:
            return ran
        ran += this_round
    raise RuntimeError(f"drain: jobs still due after {max_rounds} rounds")
