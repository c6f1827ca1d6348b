"""A cron entry: when (expression + time zone) and what (the job to insert)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from servcore.cron.expression import CronExpression, parse_timezone
from servcore.jobs import NewJob


@dataclass(frozen=True, slots=True)
class CronEntry:
    """Insert ``template``'s job at every tick of ``expression`` in ``timezone``.

    ``name`` identifies the entry across restarts and nodes: the store keeps
    the last tick done under it. Renaming an entry starts it afresh.
    """

    name: str
    expression: CronExpression
    timezone: ZoneInfo
    template: NewJob

    @classmethod
    def build(cls, name: str, expression: str, timezone: str, template: NewJob) -> CronEntry:
        """Parse ``expression`` and ``timezone``; raises CronError with the reason,
        also for one that will never fire again (its ticks all fall in a
        daylight-saving gap)."""
        entry = cls(
            name=name,
            expression=CronExpression.parse(expression),
            timezone=parse_timezone(timezone),
            template=template,
        )
        entry.next_tick(datetime.now(UTC))
        return entry

    def last_tick(self, now: datetime) -> datetime:
        return self.expression.last_at_or_before(now, self.timezone)

    def next_tick(self, now: datetime) -> datetime:
        return self.expression.next_after(now, self.timezone)

    def job_for(self, tick: datetime) -> NewJob:
        """The job of one tick: due at the tick, whenever it is inserted."""
        return msgspec.structs.replace(self.template, run_at=tick)
