"""Records finished executions in batches.

Workers hand their outcomes over and move on; the completer writes whatever
has gathered with one ``complete_jobs`` and one ``fail_jobs`` call, then
looks again. Under load the batches grow by themselves, which is what makes
completing fast (one statement and one commit for many jobs). Nothing is
dropped when the store fails: the batch is kept and written on the next try.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from servcore.store.base import Completion, Failure, JobWriter

log = logging.getLogger("servcore.runtime")


class Completer:
    def __init__(
        self,
        store: JobWriter,
        on_stale: Callable[[list[int]], None],
        on_written: Callable[[list[datetime]], None] = lambda retry_times: None,
        on_settled: Callable[[Sequence[Completion], Sequence[Failure]], None] = (
            lambda completions, failures: None
        ),
    ) -> None:
        self._store = store
        self._on_stale = on_stale
        self._on_written = on_written
        # Told of every outcome the store has taken or refused: its claim is settled.
        self._on_settled = on_settled
        self._completions: list[Completion] = []
        self._failures: list[Failure] = []
        self._wake = asyncio.Event()
        self._stopping = False

    def add_completion(self, completion: Completion) -> None:
        self._completions.append(completion)
        self._wake.set()

    def add_failure(self, failure: Failure) -> None:
        self._failures.append(failure)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._completions) + len(self._failures)

    async def run(self) -> None:
        """Write batches until :meth:`stop`; raises (for the supervisor) if the store fails.

        It is stopped, never cancelled, so that a write the store has begun is
        seen to its end (a cancelled one would be retried, so written twice).
        """
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self.flush_once()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the write under way."""
        self._stopping = True
        self._wake.set()

    async def flush_all(self) -> None:
        """Write everything still waiting (after :meth:`run` has returned)."""
        while self.pending:
            await self.flush_once()

    async def flush_once(self) -> None:
        completions, self._completions = self._completions, []
        failures, self._failures = self._failures, []
        stale: list[int] = []
        written: list[Completion] = []
        try:
            if completions:
                stale += await self._store.complete_jobs(completions)
                written, completions = completions, []
            if failures:
                stale += await self._store.fail_jobs(failures)
        except BaseException:
            self._on_settled(written, ())
            # Keep what was not written for the next try: no outcome is dropped.
            self._completions[:0] = completions
            self._failures[:0] = failures
            self._wake.set()
            raise
        self._on_settled(written, failures)
        if stale:
            self._on_stale(stale)
        # The retry times tell the queue when to look again (a retry may be due
        # before anything it is waiting for).
        self._on_written(
            [f.retry_at for f in failures if f.retry_at is not None and f.id not in stale]
        )
