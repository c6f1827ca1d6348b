"""Deletes finished jobs: older than the retention period (default 7 days,
checked hourly), or past their own ``result_ttl`` (checked every second)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from servcore.leadership.base import LeaderTerm
from servcore.store.base import Store

log = logging.getLogger("servcore.maintenance")


class Pruner:
    def __init__(self, store: Store, retention: float) -> None:
        self._store = store
        self._retention = timedelta(seconds=retention)

    async def run_once(self, now: datetime, fence: LeaderTerm | None = None) -> int:
        pruned = await self._store.prune_finished(now - self._retention, fence=fence)
        if pruned:
            log.info("Pruned %d finished job(s) older than %s", pruned, self._retention)
        return pruned


class Expirer:
    """Deletes finished jobs past their ``result_ttl`` (``Service.get_job`` hides
    them from the moment they expire; this takes them out of listings too)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def run_once(self, now: datetime, fence: LeaderTerm | None = None) -> int:
        expired = await self._store.expire_results(now, fence=fence)
        if expired:
            log.debug("Expired %d finished job(s) past their result_ttl", expired)
        return expired
