"""Log set-up for the CLI: the seed's human-readable ``[info] …`` lines, or JSON lines;
and, in a host's process, lines of our own unless the host set logging up.

JSON (``--log-format json`` / ``SERVCORE_LOG_FORMAT=json``) is one object per
line for log shippers: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, and, on lines about a job, ``job_id``, ``queue``, ``task``,
``attempt`` and ``node``; ``exception`` holds a traceback when there is one.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import msgspec

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
JOB_FIELDS = ("job_id", "queue", "task", "attempt", "node")
_encode = msgspec.json.Encoder().encode


class _SeedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in JOB_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log servcore's lines to stderr at ``level``; quiet uvicorn's own access log."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _SeedFormatter("%(asctime)s.%(msecs)03d [%(level)s] %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))


def configure_logging_unless_set(level: str = "warning") -> None:
    """:func:`configure_logging` in a process whose root logger has no handler
    yet (the short CLI commands: problems only, the seed's lines)."""
    if not logging.getLogger().handlers:
        configure_logging(level)


HOST_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_unless_configured() -> bool:
    """In a process whose logging nobody set up — an app served by uvicorn or
    gunicorn, which configure only their own loggers; a script — give
    servcore's loggers a stderr handler at INFO with time, level and logger
    name. Without it, INFO lines vanish and warnings come out bare (Python's
    last-resort handler). A host that set logging up (a handler on the root
    logger or on ``servcore``, or a level for ``servcore``) decides alone.
    True if the handler was added."""
    ours = logging.getLogger("servcore")
    if logging.getLogger().handlers or ours.handlers or ours.level != logging.NOTSET:
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(HOST_FORMAT))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    return True
