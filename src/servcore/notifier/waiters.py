"""Who in this process waits for which job to finish.

The process's one listener (``Notifier.run``) hands every finish it hears
to :meth:`FinishWaiters.finished`, which wakes the waiters of that job; a
thousand waiters cost a thousand events, not a thousand pollers. A woken
waiter reads its job once. A finish whose notification was lost (a full
socket, a dropped connection) is still seen: a waiter also reads its job
every ``wait_poll_interval`` seconds (a setting, 1 s), and a listener that
(re)connects wakes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class FinishWaiters:
    def __init__(self) -> None:
        self._waiting: dict[int, set[asyncio.Event]] = {}

    def __len__(self) -> int:
        return sum(len(events) for events in self._waiting.values())

    @contextlib.contextmanager
    def watch(self, job_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id`` may have finished, while inside."""
        event = asyncio.Event()
        events = self._waiting.setdefault(job_id, set())
        events.add(event)
        try:
            yield event
        finally:
            events.discard(event)
            if not events:
                self._waiting.pop(job_id, None)

    def finished(self, job_id: int) -> None:
        """``job_id`` finished (on the loop of the waiters)."""
        for event in self._waiting.get(job_id, ()):
            event.set()

    def wake_all(self) -> None:
        """Finishes may have been missed: every waiter reads its job again."""
        for events in self._waiting.values():
            for event in events:
                event.set()
