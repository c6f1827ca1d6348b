"""FinishedHistory: done and failed per minute, of one queue or all, and rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from servcore.job_reads import FinishedHistory, FinishedTally

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MINUTES = [T0 + timedelta(minutes=i) for i in range(10)]


def history() -> FinishedHistory:
    return FinishedHistory.of(
        MINUTES,
        [
            FinishedTally(T0 - timedelta(minutes=1), "mail", "done", 50),  # before the span
            FinishedTally(MINUTES[0], "mail", "done", 3),
            FinishedTally(MINUTES[8], "mail", "done", 4),
            FinishedTally(MINUTES[9], "mail", "failed", 1),
            FinishedTally(MINUTES[9], "mail", "cancelled", 7),  # neither done nor failed
            FinishedTally(MINUTES[9], "video", "done", 2),
        ],
    )


def test_per_minute_of_one_queue_or_all() -> None:
    finished = history()
    mail = finished.per_minute("mail")
    assert [(done, failed) for _, done, failed in mail] == [
        (3, 0),
        *([(0, 0)] * 7),
        (4, 0),
        (0, 1),
    ]
    assert [minute for minute, _, _ in mail] == MINUTES
    assert finished.per_minute()[-1] == (MINUTES[9], 2, 1)
    assert sum(done for _, done, _ in finished.per_minute("nowhere")) == 0


def test_rates_are_per_minute_over_the_last_minutes() -> None:
    finished = history()
    assert finished.rate("mail", 5) == (4 / 5, 1 / 5)  # the first minute's 3 are older
    assert finished.rate("video", 5) == (2 / 5, 0.0)
    assert finished.rate("nowhere", 5) == (0.0, 0.0)
