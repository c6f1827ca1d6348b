from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from servcore.timestamps import TimestampError, format_timestamp, parse_timestamp


def test_format_always_has_six_fraction_digits_and_z() -> None:
    assert format_timestamp(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)) == (
        "2025-12-31T23:59:59.000000Z"
    )
    assert format_timestamp(datetime(2025, 1, 2, 3, 4, 5, 957749, tzinfo=UTC)) == (
        "2025-01-02T03:04:05.957749Z"
    )


def test_format_converts_other_zones_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2025, 1, 1, 2, 0, tzinfo=plus_two)) == (
        "2025-01-01T00:00:00.000000Z"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-31T23:59:59Z", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2025-12-31T23:59:59.5+01:00", datetime(2025, 12, 31, 22, 59, 59, 500000, tzinfo=UTC)),
    ],
)
def test_parse_reads_zoned_times_into_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_refuses_naive_times_with_a_hint() -> None:
    with pytest.raises(TimestampError, match="no time zone"):
        parse_timestamp("2025-12-31T23:59:59")


@pytest.mark.parametrize("text", ["tomorrow", "", "2025-13-01T00:00:00Z"])
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(TimestampError, match="not an ISO 8601 timestamp"):
        parse_timestamp(text)
