"""One process, no database: the memory store tells its finishes straight to
whoever listens here (``notifier.base``), on the caller's loop."""

from __future__ import annotations

import asyncio

from servcore.notifier.base import OnCancel, OnFinish, OnQueue


class LocalNotifier:
    def __init__(self) -> None:
        self._hearing: list[OnFinish] = []

    def problem(self) -> str | None:
        return None

    def finished(self, job_id: int) -> None:
        for hear in list(self._hearing):
            hear(job_id)

    async def run(
        self, on_queue: OnQueue, on_cancel: OnCancel, on_finish: OnFinish | None = None
    ) -> None:
        # Queues and cancels need no telling here: their writers wake this
        # process's runtimes themselves.
        if on_finish is None:
            return
        self._hearing.append(on_finish)
        on_queue("")  # as every notifier once it listens: a finish just before is not missed
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._hearing.remove(on_finish)
