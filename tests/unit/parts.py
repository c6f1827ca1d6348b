"""What the unit tests of the runtime parts share: a memory store that can be
watched, held up and made to fail, and a fixed start for the fake clock.

Each part is built on its own here (no ``Service``), the way the service
composes it, with a :class:`~servcore.store.MemoryStore` and a
:class:`~servcore.testing.FakeClock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from servcore.jobs import Job
from servcore.store.base import ClaimParams, Completion, Failure, StoreError
from servcore.store.memory import MemoryStore
from tests.conformance.support import T0

__all__ = ["T0", "WatchedStore"]


class WatchedStore(MemoryStore):
    """A memory store that logs its writes, can hold ``complete_jobs`` at a
    gate, and can fail the next call of a kind (``"complete"`` or ``"fail"``)."""

    def __init__(self) -> None:
        super().__init__()
        # (call, job ids) for complete_jobs and fail_jobs, in order.
        self.writes: list[tuple[str, list[int]]] = []
        # (limit asked, what ``watch`` said) for every claim_jobs call.
        self.claims: list[tuple[int, int]] = []
        self.watch: Callable[[], int] = lambda: 0
        self.fail_next: set[str] = set()
        self.complete_gate = asyncio.Event()
        self.complete_gate.set()
        self.complete_waiting = 0  # complete_jobs calls held at the gate now

    async def claim_jobs(self, params: ClaimParams) -> list[Job]:
        self.claims.append((params.limit, self.watch()))
        return await super().claim_jobs(params)

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[int]:
        self.writes.append(("complete", [done.id for done in completions]))
        self.complete_waiting += 1
        try:
            await self.complete_gate.wait()
        finally:
            self.complete_waiting -= 1
        self._maybe_fail("complete")
        return await super().complete_jobs(completions)

    async def fail_jobs(self, failures: Sequence[Failure]) -> list[int]:
        self.writes.append(("fail", [failure.id for failure in failures]))
        self._maybe_fail("fail")
        return await super().fail_jobs(failures)

    def _maybe_fail(self, kind: str) -> None:
        if kind in self.fail_next:
            self.fail_next.discard(kind)
            raise StoreError(f"{kind}_jobs: the database went away")
