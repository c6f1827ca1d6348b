"""ISO 8601 text for timestamps: UTC, microseconds, ``Z`` (the seed's shape)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from servcore.errors import ServcoreError


class TimestampError(ServcoreError, ValueError):
    """A timestamp that cannot be read, or that has no time zone."""


def format_timestamp(moment: datetime) -> str:
    """``2025-12-28T17:24:48.957749Z``: always six fractional digits."""
    if moment.tzinfo is UTC:  # what stores give: the quick way, without a copy
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    utc = moment.astimezone(UTC) if moment.utcoffset() else moment
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Read an ISO 8601 timestamp with a zone (``Z`` or ``±HH:MM``) into UTC.

    RFC 3339 text is read as ``msgspec`` reads it in request bodies (``t``
    and ``z`` may be lower case), other ISO 8601 forms as ``fromisoformat`` does.
    """
    try:
        moment = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise TimestampError(
                f"{text!r} is not an ISO 8601 timestamp (e.g. 2025-12-31T23:59:59Z)"
            ) from None
    if moment.tzinfo is None:
        raise TimestampError(
            f"{text!r} has no time zone; add Z or an offset (e.g. 2025-12-31T23:59:59Z)"
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise TimestampError(f"{text!r} is out of range in UTC") from None
