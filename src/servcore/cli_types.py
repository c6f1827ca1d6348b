"""The CLI's argument types, whose errors say what to type in plain words.

Click's own range types answer ``'abc' is not a valid integer range.``; these
answer ``give a whole number from 1 to 65535; 'abc' is not one``.
"""

from __future__ import annotations

import math
from typing import Any

import click


def _number(value: float) -> str:
    """As a person writes it: 31536000, not 3.1536e+07; 0.5 stays 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range_text(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    if low is not None and high is not None:
        lower = f"more than {_number(low)} up" if low_open else f"from {_number(low)}"
        return f" {lower} to {_number(high)}"
    if low is not None:
        return f" more than {_number(low)}" if low_open else f" of at least {_number(low)}"
    if high is not None:
        return f" of at most {_number(high)}"
    return ""


class WholeNumber(click.ParamType[int, Any]):
    """An integer within ``[low, high]``."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None, *, what: str = "") -> None:
        self.low = low
        self.high = high
        self.what = what or f"a whole number{_range_text(low, high)}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"give {self.what}; {value!r} is not one", param, ctx)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            self.fail(f"give {self.what}; {number} is out of range", param, ctx)
        return number


class Seconds(click.ParamType[float, Any]):
    """A finite number of seconds within the bounds (``low_open``: above ``low``)."""

    name = "seconds"

    def __init__(
        self, low: float | None = None, high: float | None = None, *, low_open: bool = False
    ) -> None:
        self.low = low
        self.high = high
        self.low_open = low_open
        self.what = f"a number of seconds{_range_text(low, high, low_open=low_open)}"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"give {self.what}; {value!r} is not a number", param, ctx)
        too_low = self.low is not None and (
            number <= self.low if self.low_open else number < self.low
        )
        too_high = self.high is not None and number > self.high
        if not math.isfinite(number) or too_low or too_high:
            self.fail(f"give {self.what}; {value} is out of range", param, ctx)
        return number


MAX_JOB_ID = 2**63 - 1
JOB_ID = WholeNumber(1, MAX_JOB_ID, what="a job id, a whole number such as 42")
