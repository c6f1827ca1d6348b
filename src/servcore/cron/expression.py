"""Five-field cron expressions and the wall-clock instants at which they fire.

Syntax
------
An expression is five whitespace-separated fields::

    minute  hour  day-of-month  month  day-of-week
    0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)

Each field is a comma-separated list of items. An item is ``*`` (every value),
a number ``5``, a range ``1-5``, or any of those with a step: ``*/15`` (every
15th value from the lowest), ``1-30/10`` (1, 11, 21) and ``5/20`` (from 5 to the
highest value: 5, 25, 45 for minutes). Months may be written ``jan``-``dec`` and
weekdays ``sun``-``sat``, in any case and also inside ranges (``mon-fri``).
Ranges must not run backwards: ``fri-mon`` is an error; write ``fri-7,1``.

A few aliases stand for a whole expression: ``@yearly`` and ``@annually``
(``0 0 1 1 *``), ``@monthly`` (``0 0 1 * *``), ``@weekly`` (``0 0 * * 0``),
``@daily`` and ``@midnight`` (``0 0 * * *``) and ``@hourly`` (``0 * * * *``).
``@reboot`` is refused: servcore fires entries on a clock, not at start-up.

Days follow Vixie cron. The day-of-month and day-of-week fields are each
*restricted* unless they start with ``*``. When both are restricted a day
matches if either field matches it (``0 0 1 * mon`` fires on the 1st and on
every Monday); otherwise a day must match both, so a plain ``*`` leaves the
decision to the other field. As in Vixie cron, ``*/2`` counts as unrestricted:
``0 0 */2 * mon`` fires on Mondays that fall on odd days of the month.

An expression that no date can satisfy, such as ``0 0 30 2 *``, is refused
when parsed.

Time zones and daylight saving
------------------------------
Ticks are wall-clock minutes in the time zone the caller passes; results are
aware UTC datetimes. Where the clocks change:

* A wall-clock time that does not exist that day (it falls in the gap when the
  clocks spring forward) is skipped for that day: ``30 2 * * *`` in
  America/New_York does not fire on the day summer time starts. It is not
  moved to the next existing minute.
* A wall-clock time that happens twice (the clocks fall back) fires once, at
  its first occurrence (``fold=0``): ``30 1 * * *`` in America/New_York fires
  at 01:30 EDT, not again an hour later at 01:30 EST. Entries such as
  ``*/15 * * * *`` therefore pause for the repeated hour rather than fire twice.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servcore.errors import ServcoreError

__all__ = ["CronError", "CronExpression", "parse_timezone"]

# The Gregorian calendar repeats every 400 years, so a date pattern that ever
# matches does so within any 400-year span; searching further cannot help.
_SEARCH_YEARS = 400

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_WEEKDAYS = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# February counts 29 days here: the never-matches check asks about any year.
_LONGEST_MONTH = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


class CronError(ServcoreError, ValueError):
    """A cron expression or time zone that cannot be used; the message is one line."""


class _Invalid(Exception):
    """A problem found inside one expression; ``parse`` adds which expression."""


@dataclass(frozen=True, slots=True)
class _Field:
    """One of the five fields: what messages call it, its bounds, any names for values."""

    name: str
    low: int
    high: int
    names: Mapping[str, int] | None = None
    name_kind: str = ""

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            if not item:
                raise _Invalid(f"{self.name} {text!r} has an empty list item")
            values.update(self._parse_item(item))
        return frozenset(values)

    def _parse_item(self, item: str) -> range:
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text):
                raise _Invalid(f"{self.name} step {step_text!r} in {item!r} is not a number")
            step = int(step_text)
            if step == 0:
                raise _Invalid(f"{self.name} step 0 in {item!r} must be at least 1")
        if base == "*":
            return range(self.low, self.high + 1, step)
        first_text, dash, last_text = base.partition("-")
        first = self._value(first_text, item)
        if dash:
            last = self._value(last_text, item)
            if last < first:
                raise _Invalid(f"{self.name} range {base} is reversed")
        else:
            # "5/20" runs from 5 to the top of the field, as in Vixie cron.
            last = self.high if slash else first
        return range(first, last + 1, step)

    def _value(self, token: str, item: str) -> int:
        if not token or "*" in token or "-" in token:
            raise _Invalid(f"{self.name} {item!r} is malformed")
        if _is_number(token):
            value = int(token)
            if not self.low <= value <= self.high:
                raise _Invalid(f"{self.name} {value} is out of range {self.low}-{self.high}")
            return value
        if self.names is not None and token.lower() in self.names:
            return self.names[token.lower()]
        expected = f"a number or a {self.name_kind}" if self.names else "a number"
        raise _Invalid(f"{self.name} {token!r} is not {expected}")


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS, "month name")
_WEEKDAY = _Field("day-of-week", 0, 7, _WEEKDAYS, "weekday name")


def _is_number(text: str) -> bool:
    # str.isdigit alone accepts digits such as "²" or "٣" that cron never meant.
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression; build one with :meth:`parse`.

    ``weekday`` uses 0-6 with Sunday as 0 (a 7 in the source becomes 0).
    ``day_restricted`` and ``weekday_restricted`` tell whether the day-of-month
    and day-of-week fields were restricted in the Vixie sense (see the module
    documentation): they decide whether the two day fields combine by OR.
    """

    source: str
    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    weekday: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; raise :class:`CronError` naming the field at fault."""
        source = text.strip()
        try:
            return cls._parse(source)
        except _Invalid as problem:
            raise CronError(f"{_quoted(source)}: {problem}") from None

    @classmethod
    def _parse(cls, source: str) -> CronExpression:
        if not source:
            raise _Invalid("empty expression")
        fields_text = source
        if source.startswith("@"):
            alias = source.lower()
            if alias == "@reboot":
                raise _Invalid(
                    "@reboot is not supported: servcore runs cron entries on a clock,"
                    " not at start-up"
                )
            if alias not in _ALIASES:
                known = ", ".join(_ALIASES)
                raise _Invalid(f"unknown alias {source!r}; use one of {known}")
            fields_text = _ALIASES[alias]
        fields = fields_text.split()
        if len(fields) != 5:
            raise _Invalid(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        minute, hour, day, month, weekday = fields
        expression = cls(
            source=source,
            minute=_MINUTE.parse(minute),
            hour=_HOUR.parse(hour),
            day=_DAY.parse(day),
            month=_MONTH.parse(month),
            weekday=frozenset(value % 7 for value in _WEEKDAY.parse(weekday)),
            day_restricted=not day.startswith("*"),
            weekday_restricted=not weekday.startswith("*"),
        )
        if not expression._can_match():
            raise _Invalid(
                f"never matches any date: day-of-month {day} never falls in month {month}"
            )
        return expression

    def _can_match(self) -> bool:
        # With the OR rule every weekday occurs in every month. With the AND
        # rule any day that exists falls on each weekday in some year, so only
        # the day-of-month and month fields can rule out every date.
        if self.day_restricted and self.weekday_restricted:
            return True
        return any(day <= _LONGEST_MONTH[month] for month in self.month for day in self.day)

    def __str__(self) -> str:
        return self.source

    def _matches_day(self, day: date) -> bool:
        """Whether ``day`` passes the month and the two day fields."""
        if day.month not in self.month:
            return False
        in_month = day.day in self.day
        in_week = day.isoweekday() % 7 in self.weekday
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        # An unrestricted "*" field holds every value, so AND leaves the choice
        # to the other field; a "*/n" field still filters, as in Vixie cron.
        return in_month and in_week

    def next_after(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """The first tick strictly after ``moment``, as an aware UTC datetime."""
        local = _local(moment, tz)
        start = local.replace(tzinfo=None, fold=0, second=0, microsecond=0)
        start += timedelta(minutes=1)
        last_year = min(start.year + _SEARCH_YEARS, MAXYEAR)
        for wall in self._walls_from(start, last_year):
            instant = _first_instant(wall, tz)
            # In the second pass through a repeated hour, the first readings of
            # the wall times still ahead on the clock are already in the past.
            if instant is not None and instant > moment:
                return instant
        raise self._no_tick(tz, "after", moment)

    def last_at_or_before(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """The latest tick at or before ``moment``, as an aware UTC datetime."""
        local = _local(moment, tz)
        start = local.replace(tzinfo=None, fold=0, second=0, microsecond=0)
        # In the second pass through a repeated hour, wall times up to this far
        # ahead on the clock first occurred before ``moment``; start from there.
        start += local.astimezone(UTC) - local.replace(fold=0).astimezone(UTC)
        first_year = max(start.year - _SEARCH_YEARS, MINYEAR)
        for wall in self._walls_back_from(start, first_year):
            instant = _first_instant(wall, tz)
            if instant is not None and instant <= moment:
                return instant
        raise self._no_tick(tz, "at or before", moment)

    def _walls_from(self, start: datetime, last_year: int) -> Iterator[datetime]:
        """Matching wall-clock minutes at or after ``start``, earliest first."""
        hours, minutes = sorted(self.hour), sorted(self.minute)
        first_day = start.date()
        for day in self._days_from(first_day, last_year):
            for hour in hours[bisect_left(hours, start.hour) :] if day == first_day else hours:
                from_minute = start.minute if (day, hour) == (first_day, start.hour) else 0
                for minute in minutes[bisect_left(minutes, from_minute) :]:
                    yield datetime.combine(day, time(hour, minute))

    def _walls_back_from(self, start: datetime, first_year: int) -> Iterator[datetime]:
        """Matching wall-clock minutes at or before ``start``, latest first."""
        hours, minutes = sorted(self.hour), sorted(self.minute)
        first_day = start.date()
        for day in self._days_back_from(first_day, first_year):
            for hour in reversed(
                hours[: bisect_right(hours, start.hour)] if day == first_day else hours
            ):
                to_minute = start.minute if (day, hour) == (first_day, start.hour) else 59
                for minute in reversed(minutes[: bisect_right(minutes, to_minute)]):
                    yield datetime.combine(day, time(hour, minute))

    def _days_from(self, first: date, last_year: int) -> Iterator[date]:
        year, month, from_day = first.year, first.month, first.day
        while year <= last_year:
            if month in self.month:
                for day_number in range(from_day, calendar.monthrange(year, month)[1] + 1):
                    day = date(year, month, day_number)
                    if self._matches_day(day):
                        yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            from_day = 1

    def _days_back_from(self, first: date, first_year: int) -> Iterator[date]:
        year, month, to_day = first.year, first.month, first.day
        while year >= first_year:
            if month in self.month:
                for day_number in range(to_day, 0, -1):
                    day = date(year, month, day_number)
                    if self._matches_day(day):
                        yield day
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            if year >= first_year:
                to_day = calendar.monthrange(year, month)[1]

    def _no_tick(self, tz: ZoneInfo, where: str, moment: datetime) -> CronError:
        # Possible only when every matching wall time falls in a daylight-saving
        # gap, e.g. "30 2 8 3 */7" (2:30 on a March 8th that is a Sunday) in New York.
        return CronError(
            f"{_quoted(self.source)}: no tick in {tz} within {_SEARCH_YEARS} years"
            f" {where} {moment.isoformat()}"
        )


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (such as ``"Europe/Berlin"`` or ``"UTC"``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}") from None


def _quoted(source: str) -> str:
    # A newline or tab inside the source must not break the message's one line.
    return 'cron "' + " ".join(source.split()) + '"'


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment {moment.isoformat()} must be an aware datetime")
    return moment.astimezone(tz)


def _first_instant(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """When the clock in ``tz`` first reads ``wall``; None if it never does."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # A wall time in a spring-forward gap comes back from UTC as a different one.
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None
    return instant
