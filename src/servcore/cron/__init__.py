"""Recurring jobs, the pure part: five-field cron expressions and entries.

The leader-run scheduler that turns ticks into jobs is maintenance
(:mod:`servcore.maintenance.cron`): it does I/O, this package does none.
"""

from servcore.cron.entry import CronEntry
from servcore.cron.expression import CronError, CronExpression, parse_timezone

__all__ = ["CronEntry", "CronError", "CronExpression", "parse_timezone"]
