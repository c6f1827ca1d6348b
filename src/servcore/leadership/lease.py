"""Leadership as a lease held in the store, renewed while the node is well.

Every node asks the store for the lease every ``min(lease / 3, 1 s)``: the
leader renews it, the others take it once it has lapsed. A leader that
stops renewing — killed, frozen (SIGSTOP), partitioned, its VM paused —
loses it ``lease`` seconds after its last renewal, and another node takes
it at its next ask. Unlike a database session, which outlives a frozen
process for as long as TCP does, nothing here waits for the old leader.

The old leader learns it lost in two ways. Locally, it counts itself the
leader only until ``lease`` seconds after it sent its last successful
renewal (a monotonic clock: a process stopped for a minute wakes with its
deadline long past). In the store, each leader-only write names the term
it was given, and is refused once a newer term exists (a VM pause stops
the monotonic clock too; the store's check does not depend on it).

The times written are the node's own clock, as for job leases: nodes'
clocks must agree to well within a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Protocol

from servcore.clock import Clock
from servcore.errors import ServcoreError
from servcore.leadership.base import LeaderTerm

log = logging.getLogger("servcore.leadership")

_MOST_BETWEEN_ASKS = 1.0
_RESIGN_WITHIN = 2.0


class LeaderLeases(Protocol):
    """What the store keeps for leadership (see ``Store``)."""

    async def seek_leadership(
        self, node: str, now: datetime, until: datetime
    ) -> LeaderTerm | None: ...

    async def resign_leadership(self, held: LeaderTerm, now: datetime) -> None: ...


class LeaseLeadership:
    def __init__(self, leases: LeaderLeases, node: str, *, lease: float, clock: Clock) -> None:
        self._leases = leases
        self._node = node
        self._lease = lease
        self._clock = clock
        self.interval = min(lease / 3, _MOST_BETWEEN_ASKS)
        self._held: LeaderTerm | None = None
        self._deadline = 0.0  # loop time after which _held means nothing
        self._told: LeaderTerm | None = None  # the term last logged as held

    def term(self) -> LeaderTerm | None:
        if self._held is not None and asyncio.get_running_loop().time() < self._deadline:
            return self._held
        return None

    def is_leader(self) -> bool:
        return self.term() is not None

    async def run(self) -> None:
        try:
            while True:
                await self.ask_once()
                await asyncio.sleep(self.interval)
        finally:
            await self._resign()

    async def ask_once(self) -> LeaderTerm | None:
        """Renew or take the lease if it can be had; the term held now."""
        sent = asyncio.get_running_loop().time()
        now = self._clock.now()
        try:
            held = await self._leases.seek_leadership(
                self._node, now, now + timedelta(seconds=self._lease)
            )
        except ServcoreError as error:
            # Still the leader until the deadline of the last renewal, no longer.
            log.debug("Node %s could not reach the leader lease: %s", self._node, error)
        else:
            self._held = held
            if held is not None:
                self._deadline = sent + self._lease
        current = self.term()
        if current != self._told:
            if self._told is not None:
                log.warning(
                    "Node %s is no longer the leader (term %d)", self._node, self._told.term
                )
            if current is not None:
                log.info("Node %s is now the leader (term %d)", self._node, current.term)
            self._told = current
        return current

    async def _resign(self) -> None:
        """Hand the lease on at once when stopping, rather than after it lapses."""
        held, self._held = self._held, None
        if held is None:
            return
        with contextlib.suppress(ServcoreError, TimeoutError):
            await asyncio.wait_for(
                self._leases.resign_leadership(held, self._clock.now()), _RESIGN_WITHIN
            )
            log.info("Node %s stepped down as leader (term %d)", self._node, held.term)
