"""Cron expressions: parsing, errors, Vixie day matching, and ticks checked
against a minute-by-minute brute force across daylight-saving changes."""

from __future__ import annotations

import bisect
import dataclasses
import time
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from servcore.cron import CronError, CronExpression, parse_timezone

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
UTC_ZONE = ZoneInfo("UTC")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ticks(text: str, start: datetime, count: int, tz: ZoneInfo = UTC_ZONE) -> list[datetime]:
    expression = CronExpression.parse(text)
    found = []
    for _ in range(count):
        start = expression.next_after(start, tz)
        found.append(start)
    return found


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("*", set(range(60))),
        ("7", {7}),
        ("07", {7}),
        ("10-13", {10, 11, 12, 13}),
        ("*/15", {0, 15, 30, 45}),
        ("10-30/10", {10, 20, 30}),
        ("5/20", {5, 25, 45}),
        ("1,2,40-42,*/30", {0, 1, 2, 30, 40, 41, 42}),
        ("59", {59}),
        ("*/100", {0}),
    ],
)
def test_minute_field_syntax(field: str, values: set[int]) -> None:
    assert CronExpression.parse(f"{field} * * * *").minute == values


def test_each_field_has_its_own_range() -> None:
    expression = CronExpression.parse("* * * * *")
    assert expression.minute == frozenset(range(60))
    assert expression.hour == frozenset(range(24))
    assert expression.day == frozenset(range(1, 32))
    assert expression.month == frozenset(range(1, 13))
    assert expression.weekday == frozenset(range(7))
    assert CronExpression.parse("0 */6 */10 */5 *").hour == {0, 6, 12, 18}
    assert CronExpression.parse("0 0 */10 * *").day == {1, 11, 21, 31}
    assert CronExpression.parse("0 0 1 */5 *").month == {1, 6, 11}


def test_month_and_weekday_names_in_any_case_and_in_ranges() -> None:
    expression = CronExpression.parse("0 0 * jan,MAR-May,Dec mon-FRI/2,sun")
    assert expression.month == {1, 3, 4, 5, 12}
    assert expression.weekday == {0, 1, 3, 5}
    assert CronExpression.parse("0 0 * feb/3 *").month == {2, 5, 8, 11}
    assert CronExpression.parse("0 0 * * sat").weekday == {6}


def test_seven_is_sunday() -> None:
    assert CronExpression.parse("0 0 * * 7").weekday == {0}
    assert CronExpression.parse("0 0 * * 5-7").weekday == {5, 6, 0}
    assert CronExpression.parse("0 0 * * fri-7").weekday == {5, 6, 0}
    assert CronExpression.parse("0 0 * * */7").weekday == {0}


def test_whitespace_and_source() -> None:
    expression = CronExpression.parse("  5\t4  *   *  mon\n")
    assert (expression.minute, expression.hour, expression.weekday) == ({5}, {4}, {1})
    assert expression.source == "5\t4  *   *  mon"
    assert str(expression) == "5\t4  *   *  mon"
    assert str(CronExpression.parse("@daily")) == "@daily"


@pytest.mark.parametrize(
    ("day", "weekday", "restricted"),
    [
        ("*", "*", False),
        ("*/2", "*/2", False),
        ("1-31", "0-7", True),
        ("1", "mon", True),
        ("1,*", "1,*", True),
    ],
)
def test_day_fields_are_restricted_unless_they_start_with_a_star(
    day: str, weekday: str, restricted: bool
) -> None:
    assert CronExpression.parse(f"0 0 {day} * *").day_restricted is restricted
    assert CronExpression.parse(f"0 0 * * {weekday}").weekday_restricted is restricted


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@Daily", "0 0 * * *"),
    ],
)
def test_aliases(alias: str, fields: str) -> None:
    expression = CronExpression.parse(alias)
    assert expression.source == alias
    assert expression == dataclasses.replace(CronExpression.parse(fields), source=alias)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'cron "": empty expression'),
        ("   ", 'cron "": empty expression'),
        (
            "* * * *",
            'cron "* * * *": expected 5 fields (minute hour day-of-month month day-of-week), got 4',
        ),
        (
            "0 0 * * * 2026",
            'cron "0 0 * * * 2026": expected 5 fields'
            " (minute hour day-of-month month day-of-week), got 6",
        ),
        ("61 * * * *", 'cron "61 * * * *": minute 61 is out of range 0-59'),
        ("0 24 * * *", 'cron "0 24 * * *": hour 24 is out of range 0-23'),
        ("0 0 0 * *", 'cron "0 0 0 * *": day-of-month 0 is out of range 1-31'),
        ("0 0 32 * *", 'cron "0 0 32 * *": day-of-month 32 is out of range 1-31'),
        ("0 0 * 13 *", 'cron "0 0 * 13 *": month 13 is out of range 1-12'),
        ("0 0 * * 8", 'cron "0 0 * * 8": day-of-week 8 is out of range 0-7'),
        ("0 0 * * 1-9", 'cron "0 0 * * 1-9": day-of-week 9 is out of range 0-7'),
        ("5-1 * * * *", 'cron "5-1 * * * *": minute range 5-1 is reversed'),
        ("0 0 * dec-jan *", 'cron "0 0 * dec-jan *": month range dec-jan is reversed'),
        ("0 0 * * sat-sun", 'cron "0 0 * * sat-sun": day-of-week range sat-sun is reversed'),
        ("*/0 * * * *", "cron \"*/0 * * * *\": minute step 0 in '*/0' must be at least 1"),
        ("0 1-5/0 * * *", "cron \"0 1-5/0 * * *\": hour step 0 in '1-5/0' must be at least 1"),
        ("*/x * * * *", "cron \"*/x * * * *\": minute step 'x' in '*/x' is not a number"),
        ("*/ * * * *", "cron \"*/ * * * *\": minute step '' in '*/' is not a number"),
        ("*/-1 * * * *", "cron \"*/-1 * * * *\": minute step '-1' in '*/-1' is not a number"),
        ("0 0 * foo *", "cron \"0 0 * foo *\": month 'foo' is not a number or a month name"),
        (
            "0 0 * * fun",
            "cron \"0 0 * * fun\": day-of-week 'fun' is not a number or a weekday name",
        ),
        (
            "0 0 * * monday",
            "cron \"0 0 * * monday\": day-of-week 'monday' is not a number or a weekday name",
        ),
        (
            "0 0 * jan-foo *",
            "cron \"0 0 * jan-foo *\": month 'foo' is not a number or a month name",
        ),
        (
            "0 0 * * jan",
            "cron \"0 0 * * jan\": day-of-week 'jan' is not a number or a weekday name",
        ),
        ("jan * * * *", "cron \"jan * * * *\": minute 'jan' is not a number"),
        ("L * * * *", "cron \"L * * * *\": minute 'L' is not a number"),
        ("0 0 ? * *", "cron \"0 0 ? * *\": day-of-month '?' is not a number"),
        ("٣ * * * *", "cron \"٣ * * * *\": minute '٣' is not a number"),
        ("1,,2 * * * *", "cron \"1,,2 * * * *\": minute '1,,2' has an empty list item"),
        ("1, * * * *", "cron \"1, * * * *\": minute '1,' has an empty list item"),
        ("-5 * * * *", "cron \"-5 * * * *\": minute '-5' is malformed"),
        ("1-2-3 * * * *", "cron \"1-2-3 * * * *\": minute '1-2-3' is malformed"),
        ("*-5 * * * *", "cron \"*-5 * * * *\": minute '*-5' is malformed"),
        ("5-* * * * *", "cron \"5-* * * * *\": minute '5-*' is malformed"),
        ("** * * * *", "cron \"** * * * *\": minute '**' is malformed"),
        (
            "@reboot",
            'cron "@reboot": @reboot is not supported: servcore runs cron entries on a clock,'
            " not at start-up",
        ),
        (
            "@often",
            "cron \"@often\": unknown alias '@often'; use one of @yearly, @annually, @monthly,"
            " @weekly, @daily, @midnight, @hourly",
        ),
        (
            "@daily 5",
            "cron \"@daily 5\": unknown alias '@daily 5'; use one of @yearly, @annually,"
            " @monthly, @weekly, @daily, @midnight, @hourly",
        ),
        (
            "0 0 31 2 *",
            'cron "0 0 31 2 *": never matches any date: day-of-month 31 never falls in month 2',
        ),
        (
            "0 0 30 2 *",
            'cron "0 0 30 2 *": never matches any date: day-of-month 30 never falls in month 2',
        ),
        (
            "0 0 31 apr,jun,sep,nov */2",
            'cron "0 0 31 apr,jun,sep,nov */2": never matches any date:'
            " day-of-month 31 never falls in month apr,jun,sep,nov",
        ),
        (
            "0 0 30 2 */1",
            'cron "0 0 30 2 */1": never matches any date: day-of-month 30 never falls in month 2',
        ),
        (
            "0 0\n30 2 *",
            'cron "0 0 30 2 *": never matches any date: day-of-month 30 never falls in month 2',
        ),
    ],
)
def test_errors_name_the_field_and_value(text: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        CronExpression.parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("0 0 29 2 *", utc(2028, 2, 29)),
        ("0 0 31 1,2 *", utc(2026, 1, 31)),
        # Both day fields restricted: every Monday in February counts.
        ("0 0 30 2 mon", utc(2026, 2, 2)),
    ],
)
def test_dates_that_exist_in_some_year_are_accepted(text: str, first: datetime) -> None:
    assert CronExpression.parse(text).next_after(utc(2026, 1, 1), UTC_ZONE) == first


def test_parse_timezone() -> None:
    assert parse_timezone("UTC") == ZoneInfo("UTC")
    assert parse_timezone("Europe/Berlin") == BERLIN
    for name in ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "Europe"]:
        with pytest.raises(CronError) as caught:
            parse_timezone(name)
        assert str(caught.value) == f"unknown time zone {name!r}"
    with pytest.raises(CronError, match=r"^unknown time zone 'Mars/Base'$"):
        parse_timezone("Mars/Base")


# --- days: Vixie cron's rule -------------------------------------------------


def days(text: str, count: int) -> list[str]:
    return [tick.date().isoformat() for tick in ticks(text, utc(2026, 2, 1), count)]


def test_both_day_fields_restricted_match_either() -> None:
    # 2026-02-10 is a Tuesday; every Friday and every 10th fires.
    assert days("0 0 10 * fri", 6) == [
        "2026-02-06",
        "2026-02-10",
        "2026-02-13",
        "2026-02-20",
        "2026-02-27",
        "2026-03-06",
    ]


def test_only_the_restricted_day_field_counts() -> None:
    assert days("0 0 10 * *", 3) == ["2026-02-10", "2026-03-10", "2026-04-10"]
    assert days("0 0 * * fri", 3) == ["2026-02-06", "2026-02-13", "2026-02-20"]


def test_a_starred_step_is_unrestricted_and_both_must_match() -> None:
    # Vixie cron treats "*/10" like "*" for the OR rule, yet it still filters:
    # only Fridays that fall on the 1st, 11th, 21st or 31st.
    assert days("0 0 */10 * fri", 3) == ["2026-05-01", "2026-07-31", "2026-08-21"]
    # Day-of-week "*/5" is Sunday and Friday: only those that fall on a 10th.
    assert days("0 0 10 * */5", 3) == ["2026-04-10", "2026-05-10", "2026-07-10"]


# --- finding ticks -----------------------------------------------------------


def test_results_are_aware_utc_on_whole_local_minutes() -> None:
    tick = CronExpression.parse("0 9 * * *").next_after(utc(2026, 1, 1, 12, 0, 30), KOLKATA)
    assert tick == utc(2026, 1, 2, 3, 30)
    assert tick.tzinfo is UTC
    local = tick.astimezone(KOLKATA)
    assert (local.hour, local.minute, local.second, local.microsecond) == (9, 0, 0, 0)


def test_next_after_is_strict_and_last_at_or_before_is_not() -> None:
    expression = CronExpression.parse("*/10 * * * *")
    tick = utc(2026, 5, 1, 12, 10)
    assert expression.next_after(tick, UTC_ZONE) == utc(2026, 5, 1, 12, 20)
    assert expression.next_after(tick - timedelta(microseconds=1), UTC_ZONE) == tick
    assert expression.last_at_or_before(tick, UTC_ZONE) == tick
    assert expression.last_at_or_before(tick - timedelta(microseconds=1), UTC_ZONE) == utc(
        2026, 5, 1, 12, 0
    )


def test_moments_in_any_zone_are_accepted() -> None:
    expression = CronExpression.parse("0 12 * * *")
    moment = datetime(2026, 5, 1, 8, 0, tzinfo=NEW_YORK)  # 12:00 UTC
    assert expression.next_after(moment, UTC_ZONE) == utc(2026, 5, 2, 12)
    assert expression.last_at_or_before(moment, UTC_ZONE) == utc(2026, 5, 1, 12)


def test_naive_moments_are_refused() -> None:
    expression = CronExpression.parse("* * * * *")
    with pytest.raises(ValueError, match="aware"):
        expression.next_after(datetime(2026, 1, 1), UTC_ZONE)
    with pytest.raises(ValueError, match="aware"):
        expression.last_at_or_before(datetime(2026, 1, 1), UTC_ZONE)


def test_leap_day_is_found_quickly() -> None:
    expression = CronExpression.parse("0 0 29 2 *")
    started = time.perf_counter()
    after = expression.next_after(utc(2025, 3, 1), BERLIN)
    before = expression.last_at_or_before(utc(2028, 2, 28), BERLIN)
    elapsed = time.perf_counter() - started
    assert after == datetime(2028, 2, 29, tzinfo=BERLIN)
    assert before == datetime(2024, 2, 29, tzinfo=BERLIN)
    assert elapsed < 0.05  # minute by minute would take seconds
    assert expression.next_after(after, BERLIN) == datetime(2032, 2, 29, tzinfo=BERLIN)


def test_leap_day_on_a_weekday() -> None:
    # AND (the weekday field starts with "*"): a 29 February that is a Sunday.
    assert ticks("0 0 29 2 */7", utc(2025, 1, 1), 2) == [utc(2032, 2, 29), utc(2060, 2, 29)]
    # OR: any Sunday in February, or the 29th.
    assert ticks("0 0 29 2 sun", utc(2028, 2, 20), 3) == [
        utc(2028, 2, 27),
        utc(2028, 2, 29),
        utc(2029, 2, 4),
    ]


def test_far_year_boundaries() -> None:
    expression = CronExpression.parse("0 0 1 1 *")
    assert expression.next_after(utc(2999, 6, 1), UTC_ZONE) == utc(3000, 1, 1)
    assert expression.last_at_or_before(utc(2000, 6, 1), UTC_ZONE) == utc(2000, 1, 1)


def test_a_time_that_only_ever_falls_in_a_gap_never_fires() -> None:
    # 02:30 on a Sunday 8 March: New York springs forward over it every time.
    expression = CronExpression.parse("30 2 8 3 */7")
    with pytest.raises(CronError, match="no tick in America/New_York within 400 years"):
        expression.next_after(utc(2026, 1, 1), NEW_YORK)
    assert expression.next_after(utc(2026, 1, 1), UTC_ZONE) == utc(2026, 3, 8, 2, 30)


# --- daylight saving, by example -------------------------------------------------


def test_a_time_in_the_spring_gap_is_skipped_that_day() -> None:
    # New York springs forward from 02:00 to 03:00 on 8 March 2026.
    found = ticks("30 2 * * *", utc(2026, 3, 7, 12), 2, NEW_YORK)
    assert [tick.astimezone(NEW_YORK).isoformat() for tick in found] == [
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    last = CronExpression.parse("30 2 * * *").last_at_or_before(utc(2026, 3, 9), NEW_YORK)
    assert last.astimezone(NEW_YORK).isoformat() == "2026-03-07T02:30:00-05:00"


def test_a_repeated_time_fires_once_at_its_first_occurrence() -> None:
    # New York falls back from 02:00 EDT to 01:00 EST on 1 November 2026.
    found = ticks("30 1 * * *", utc(2026, 10, 31, 12), 2, NEW_YORK)
    assert found == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert readings_of(found, NEW_YORK) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_frequent_entries_pause_during_the_repeated_hour() -> None:
    found = ticks("*/15 * * * *", utc(2026, 11, 1, 5, 30), 3, NEW_YORK)
    # After 01:45 EDT come only second readings until 02:00 EST.
    assert readings_of(found, NEW_YORK) == [
        "2026-11-01T01:45:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:15:00-05:00",
    ]


def test_moments_in_the_second_reading_of_a_repeated_hour() -> None:
    expression = CronExpression.parse("45 1 * * *")
    second_reading = utc(2026, 11, 1, 6, 10).astimezone(NEW_YORK)
    assert (second_reading.hour, second_reading.minute, second_reading.fold) == (1, 10, 1)
    # 01:45 is later on the clock, but its first reading (05:45 UTC) has passed.
    assert expression.last_at_or_before(second_reading, NEW_YORK) == utc(2026, 11, 1, 5, 45)
    assert expression.next_after(second_reading, NEW_YORK) == utc(2026, 11, 2, 6, 45)


def test_lord_howe_shifts_by_half_an_hour() -> None:
    # The clocks go 02:00 -> 02:30 on 4 October 2026 and 02:00 -> 01:30 on 5 April.
    spring = ticks("15 2 * * *", utc(2026, 10, 2, 12), 2, LORD_HOWE)
    assert readings_of(spring, LORD_HOWE) == [
        "2026-10-03T02:15:00+10:30",
        "2026-10-05T02:15:00+11:00",
    ]
    autumn = ticks("45 1 * * *", utc(2026, 4, 4, 0), 2, LORD_HOWE)
    assert readings_of(autumn, LORD_HOWE) == [
        "2026-04-05T01:45:00+11:00",
        "2026-04-06T01:45:00+10:30",
    ]


def readings_of(instants: list[datetime], tz: ZoneInfo) -> list[str]:
    return [instant.astimezone(tz).isoformat() for instant in instants]


# --- daylight saving, against brute force ------------------------------------------

EXPRESSIONS = [
    "* 0-3 * * *",
    "*/15 * * * *",
    "30 2 * * *",
    "0,30 1-3 * * *",
    "*/7 2 * * *",
    "45 1 * * sun",
    "15 */2 4,7,28,31 * mon",
    "40 1 */2 * sat,sun",
    "5-59/20 0-4 * mar,apr,oct-nov *",
    "59 23 * * *",
    "@hourly",
]

# Three local days around each zone's 2026 clock changes (and two zones without).
WINDOWS = [
    ("UTC", date(2026, 3, 7)),
    ("Asia/Kolkata", date(2026, 3, 7)),
    ("America/New_York", date(2026, 3, 7)),
    ("America/New_York", date(2026, 10, 31)),
    ("Europe/Berlin", date(2026, 3, 28)),
    ("Europe/Berlin", date(2026, 10, 24)),
    ("Australia/Lord_Howe", date(2026, 4, 4)),
    ("Australia/Lord_Howe", date(2026, 10, 3)),
]


@cache
def readings(zone: str, first: date) -> list[tuple[datetime, datetime]]:
    """Every minute of the window as (UTC instant, local reading with its fold)."""
    tz = ZoneInfo(zone)
    instant = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=3), datetime.min.time(), tz)
    found = []
    while instant < end:
        found.append((instant, instant.astimezone(tz)))
        instant += timedelta(minutes=1)
    return found


def brute_force(expression: CronExpression, zone: str, first: date) -> list[datetime]:
    """The ticks in the window, straight from the documented rules.

    Every real instant is visited, so wall times in a spring-forward gap never
    come up; a repeated wall time counts only on its first reading (fold 0).
    """

    def fires(local: datetime) -> bool:
        in_month = local.day in expression.day
        in_week = local.isoweekday() % 7 in expression.weekday
        both = expression.day_restricted and expression.weekday_restricted
        return (
            local.fold == 0
            and local.minute in expression.minute
            and local.hour in expression.hour
            and local.month in expression.month
            and ((in_month or in_week) if both else (in_month and in_week))
        )

    return [instant for instant, local in readings(zone, first) if fires(local)]


@pytest.mark.parametrize(("zone", "first"), WINDOWS, ids=[f"{z}-{d}" for z, d in WINDOWS])
@pytest.mark.parametrize("text", EXPRESSIONS)
def test_ticks_match_brute_force(text: str, zone: str, first: date) -> None:
    expression = CronExpression.parse(text)
    tz = ZoneInfo(zone)
    minutes = readings(zone, first)
    start, end = minutes[0][0], minutes[-1][0] + timedelta(minutes=1)
    expected = brute_force(expression, zone, first)
    assert expected, "each window should hold some ticks"

    found = []
    tick = expression.next_after(start - timedelta(microseconds=1), tz)
    while tick < end:
        found.append(tick)
        assert tick.tzinfo is UTC
        assert expression.last_at_or_before(tick, tz) == tick
        tick = expression.next_after(tick, tz)
    assert found == expected

    # Between ticks, from moments given in UTC and in local time (fold and all).
    for index in range(0, len(minutes), 7):
        instant = minutes[index][0]
        moment = instant + timedelta(seconds=29)
        if index % 2:
            moment = moment.astimezone(tz)  # keeps the fold of a repeated hour
        position = bisect.bisect_right(expected, moment)
        if 0 < position < len(expected):
            assert expression.last_at_or_before(moment, tz) == expected[position - 1]
            assert expression.next_after(moment, tz) == expected[position]
