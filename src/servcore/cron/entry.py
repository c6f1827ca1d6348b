"""A cron entry: when (expression + time zone) and what (the job to insert)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from servcore.cron.expression import CronError, CronExpression, parse_timezone
from servcore.job_requests import JobRequestError
from servcore.jobs import NewJob

# Options a cron entry decides itself: each tick's job is due at the tick.
REFUSED_OPTIONS = ("run_at", "delay", "unique_key")


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

    @classmethod
    def declare(
        cls,
        name: str,
        expression: str,
        timezone: str,
        template: NewJob,
        declared: Mapping[str, CronEntry],
    ) -> CronEntry:
        """:meth:`build`, for an entry a user declares beside ``declared``;
        raises JobRequestError for a bad name, expression or zone."""
        if not name or "\x00" in name or len(name) > 200:
            raise JobRequestError("a cron entry's name must be 1-200 characters, no NUL")
        if name in declared:
            raise JobRequestError(
                f"cron entry {name!r} is already declared; give the second a name="
            )
        try:
            return cls.build(
                name, expression, timezone, msgspec.structs.replace(template, trace_context=None)
            )
        except CronError as error:
            raise JobRequestError(str(error)) from None

    def last_tick(self, now: datetime) -> datetime:
        return self.expression.last_at_or_before(now, self.timezone)

    def next_tick(self, now: datetime) -> datetime:
        return self.expression.next_after(now, self.timezone)

    def job_for(self, tick: datetime) -> NewJob:
        """The job of one tick: due at the tick, whenever it is inserted."""
        return msgspec.structs.replace(self.template, run_at=tick)
