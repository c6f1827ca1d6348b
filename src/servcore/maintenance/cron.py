"""Inserts each cron entry's job once per tick, across every node.

Exactly once rests on the store, not on timing: ``advance_cron`` records an
entry's tick and inserts its job in one transaction, and only the first
caller for a tick wins. Only the leader looks (one node does the work), and
it writes under its term (see store.base): a leader that was replaced while
it was frozen inserts nothing on waking, and two nodes that both think they
lead still insert one job.

At each look the entry's latest tick at or before now is compared with the
recorded one. Several ticks missed while every node was down thus give one
job (the latest tick's), not a burst. A new entry — no tick recorded — starts
at its next tick rather than firing for one that passed before it existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from servcore.clock import Clock
from servcore.cron.entry import CronEntry
from servcore.jobs import Job
from servcore.leadership.base import LeaderTerm
from servcore.store.base import Store
from servcore.supervisor import Health

log = logging.getLogger("servcore.cron")

_MIN_WAIT = 0.001


class CronScheduler:
    def __init__(
        self,
        store: Store,
        entries: Sequence[CronEntry],
        *,
        clock: Clock,
        health: Health,
        leader: Callable[[], LeaderTerm | None] | None = None,
        on_inserted: Callable[[Job], None] = lambda job: None,
        look_every: float = 1.0,
    ) -> None:
        self._store = store
        self._entries = list(entries)
        self._clock = clock
        self._health = health
        # The term this node leads in, or None; no callable: look always, unfenced.
        self._leader = leader
        self._on_inserted = on_inserted
        # However far the next tick is, look again this often: leadership may
        # have moved here, or the wall clock jumped.
        self._look_every = look_every
        self._due_at: datetime | None = None  # None: look at the next chance

    async def run_once(self, now: datetime, fence: LeaderTerm | None = None) -> list[Job]:
        """Insert the job of every entry whose latest tick is not yet recorded
        (as the leader in term ``fence`` when given)."""
        recorded = await self._store.cron_ticks()
        inserted = []
        for entry in self._entries:
            tick = entry.last_tick(now)
            last = recorded.get(entry.name)
            if last is not None and last >= tick:
                continue
            # A new entry records its latest past tick without a job.
            new_job = entry.job_for(tick) if last is not None else None
            job = await self._store.advance_cron(entry.name, tick, new_job, now, fence=fence)
            if job is not None:
                log.info("Cron %s: inserted job %d for %s", entry.name, job.id, tick.isoformat())
                self._on_inserted(job)
                inserted.append(job)
        self._due_at = min(entry.next_tick(now) for entry in self._entries)
        return inserted

    async def run(self) -> None:
        while True:
            term = self._leader() if self._leader is not None else None
            leading = self._leader is None or term is not None
            now = self._clock.now()
            if not leading:
                self._due_at = None  # when leadership comes, catch up at once
            elif self._due_at is None or now >= self._due_at:
                await self.run_once(now, term)
            self._health.ok("cron")
            wait = self._look_every
            if leading and self._due_at is not None:
                wait = min(wait, (self._due_at - self._clock.now()).total_seconds())
            await asyncio.sleep(max(wait, _MIN_WAIT))
