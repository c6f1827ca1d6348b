"""Cron expressions: parsing five-field schedules and finding their ticks in a time zone."""

from servcore.cron.expression import CronError, CronExpression, parse_timezone

__all__ = ["CronError", "CronExpression", "parse_timezone"]
