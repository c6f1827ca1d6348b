"""Backoff between attempts: pure functions of (attempt, random draw)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with proportional jitter.

    The delay before retrying after failed attempt ``n`` (1-based) is
    ``min(max_delay, base * factor ** (n - 1))``, moved up or down by at most
    ``jitter`` of itself so that jobs failing together do not retry together.
    Defaults: 1 s, 2 s, 4 s, … capped at one hour, ±10 %.
    """

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(
                "backoff needs base >= 0, factor >= 1, max_delay >= 0 and 0 <= jitter <= 1"
            )

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt``; ``draw`` gives [0, 1)."""
        exponent = max(attempt - 1, 0)
        try:
            raw = self.base * self.factor ** min(exponent, 64)
        except OverflowError:
            raw = self.max_delay
        capped = min(self.max_delay, raw)
        spread = capped * self.jitter
        return max(0.0, capped - spread + 2 * spread * draw())


DEFAULT_BACKOFF = Backoff()
