"""Recurring jobs: five-field cron expressions, entries, and the scheduler."""

from servcore.cron.entry import CronEntry
from servcore.cron.expression import CronError, CronExpression, parse_timezone
from servcore.cron.scheduler import CronScheduler

__all__ = ["CronEntry", "CronError", "CronExpression", "CronScheduler", "parse_timezone"]
