"""A CPU-bound handler for ``executors.py``, importable by worker processes."""

from __future__ import annotations

from servcore import Job


def crunch(job: Job) -> int:
    """Pure-Python arithmetic: holds the GIL the whole time, as real CPU work does."""
    total = 0
    for n in range(job.payload["loops"]):
        total += n * n % 7
    return total
