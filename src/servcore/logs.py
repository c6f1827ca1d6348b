"""Log set-up for the CLI: the seed's human-readable ``[info] …`` lines."""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")


class _SeedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        return super().format(record)


def configure_logging(level: str = "info") -> None:
    """Log servcore's lines to stderr at ``level``; quiet uvicorn's own access log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _SeedFormatter("%(asctime)s.%(msecs)03d [%(level)s] %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
