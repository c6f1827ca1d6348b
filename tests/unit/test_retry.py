from __future__ import annotations

import pytest

from servcore.retry import DEFAULT_BACKOFF, Backoff


def test_default_backoff_doubles_from_one_second_without_jitter_draw_in_middle() -> None:
    middle = lambda: 0.5  # noqa: E731 - a draw of 0.5 removes the jitter
    assert [DEFAULT_BACKOFF.delay(n, middle) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_delay_is_capped_by_max_delay() -> None:
    backoff = Backoff(base=1, factor=10, max_delay=60, jitter=0)
    assert backoff.delay(5) == 60


def test_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(base=10, factor=1, jitter=0.2)
    assert backoff.delay(1, lambda: 0.0) == pytest.approx(8.0)
    assert backoff.delay(1, lambda: 0.999999) == pytest.approx(12.0, rel=1e-5)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(max_delay=3600, jitter=0).delay(10_000) == 3600


@pytest.mark.parametrize(
    "kwargs", [{"base": -1}, {"factor": 0.5}, {"max_delay": -1}, {"jitter": 1.5}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)
