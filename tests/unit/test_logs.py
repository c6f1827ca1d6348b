"""JSON log lines: one object a line, with the job's fields when it is about a job."""

from __future__ import annotations

import json
import logging
import sys

from servcore.logs import JsonFormatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("servcore.runtime", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_job_line_carries_the_job_fields() -> None:
    line = JsonFormatter().format(
        record(
            "Executing job %d (%s, attempt %d)",
            7,
            "send",
            2,
            job_id=7,
            queue="email",
            task="send",
            attempt=2,
            node="n1",
        )
    )
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["message"] == "Executing job 7 (send, attempt 2)"
    assert (parsed["level"], parsed["logger"]) == ("info", "servcore.runtime")
    assert {k: parsed[k] for k in ("job_id", "queue", "task", "attempt", "node")} == {
        "job_id": 7,
        "queue": "email",
        "task": "send",
        "attempt": 2,
        "node": "n1",
    }
    assert parsed["time"].endswith("Z")


def test_other_lines_and_tracebacks() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failing = record("Store failed")
        failing.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(failing))
    assert "job_id" not in parsed
    assert "ValueError: bad" in parsed["exception"]
