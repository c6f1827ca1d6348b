"""The telemetry seam: attach, detach, emit, and a handler that fails."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from servcore.telemetry import Telemetry


def test_handlers_get_the_events_they_attached_to() -> None:
    telemetry = Telemetry()
    seen: list[tuple[str, Any, Any]] = []
    telemetry.attach("a", ["job.start", "job.stop"], lambda e, m, d: seen.append((e, m, d)))
    assert telemetry.listening("job.start")
    assert not telemetry.listening("http.stop")
    telemetry.emit("job.start", {"queue_latency": 0.5}, {"job_id": 1})
    telemetry.emit("http.stop", {"duration": 1.0}, {})  # nobody listens: nothing happens
    assert seen == [("job.start", {"queue_latency": 0.5}, {"job_id": 1})]
    assert telemetry.detach("a") is True
    assert telemetry.detach("a") is False
    assert not telemetry.listening("job.start")


def test_a_failing_handler_is_logged_and_detached_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = Telemetry()
    calls: list[str] = []

    def broken(event: str, measurements: Any, metadata: Any) -> None:
        raise RuntimeError("handler bug")

    telemetry.attach("broken", "job.stop", broken)
    telemetry.attach("fine", "job.stop", lambda e, m, d: calls.append(e))
    with caplog.at_level(logging.ERROR, logger="servcore.telemetry"):
        telemetry.emit("job.stop", {}, {})
        telemetry.emit("job.stop", {}, {})
    assert calls == ["job.stop", "job.stop"]
    assert "Telemetry handler 'broken' failed on job.stop; it is detached" in caplog.text
    assert len(caplog.records) == 1  # detached after the first failure


def test_attaching_is_checked() -> None:
    telemetry = Telemetry()
    with pytest.raises(ValueError, match="unknown event"):
        telemetry.attach("x", ["job.finish"], lambda e, m, d: None)
    telemetry.attach("x", ["job.stop"], lambda e, m, d: None)
    with pytest.raises(ValueError, match="already attached"):
        telemetry.attach("x", ["job.start"], lambda e, m, d: None)


def test_handlers_attached_together_are_detached_together_when_one_fails() -> None:
    telemetry = Telemetry()

    def broken(event: str, measurements: Any, metadata: Any) -> None:
        raise RuntimeError("bug")

    telemetry.attach_many("pair", {"job.start": lambda e, m, d: None, "job.stop": broken})
    telemetry.emit("job.stop", {}, {})
    assert not telemetry.listening("job.start")
    assert not telemetry.listening("job.stop")
