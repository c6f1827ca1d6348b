"""The notifier seam: something that hears about jobs other processes stored.

Notifications only wake queues up; the queue's capped poll guarantees
progress when one is lost (a dropped connection, a restart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

OnQueue = Callable[[str], None]


class Notifier(Protocol):
    async def run(self, on_queue: OnQueue) -> None:
        """Call ``on_queue(name)`` for each notification until cancelled;
        ``on_queue("")`` means any queue may have new jobs."""
        ...

    def problem(self) -> str | None:
        """Why notifications are not arriving right now, or None."""
        ...
