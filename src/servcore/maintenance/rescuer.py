"""Puts jobs whose worker died back in the queue (or fails poison pills)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime

from servcore.leadership.base import LeaderTerm
from servcore.store.base import RescueReport, Store

log = logging.getLogger("servcore.maintenance")


class Rescuer:
    def __init__(
        self,
        store: Store,
        max_rescues: int,
        on_rescued: Callable[[RescueReport], None] = lambda report: None,
        held_here: Callable[[], Collection[int]] = frozenset,
    ) -> None:
        self._store = store
        # This node is alive (it is running the rescue): what it holds is not lost.
        self._held_here = held_here
        self._max_rescues = max_rescues
        self._on_rescued = on_rescued
        self.rescued = 0

    async def run_once(self, now: datetime, fence: LeaderTerm | None = None) -> RescueReport:
        """One sweep; as the leader in term ``fence`` when given (see store.base)."""
        report = await self._store.rescue_expired_leases(
            now, self._max_rescues, spare=self._held_here(), fence=fence
        )
        self.rescued += len(report.requeued) + len(report.failed)
        if report.requeued or report.failed:
            self._on_rescued(report)
        if report.requeued:
            log.warning(
                "Rescued %d job(s) whose worker was lost: %s",
                len(report.requeued),
                _ids(report.requeued),
            )
        if report.failed:
            log.error(
                "Failed %d job(s) that kept losing their worker or had no attempts left: %s",
                len(report.failed),
                _ids(report.failed),
            )
        return report


def _ids(ids: list[int], shown: int = 20) -> str:
    text = ", ".join(str(job_id) for job_id in ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
