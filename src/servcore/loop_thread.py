"""An event loop in a thread of its own, for calls from code that is not async.

A Django view, a Flask route or a script has no running loop; servcore's
store verbs are coroutines. :class:`LoopThread` runs one loop in a daemon
thread and hands it coroutines from any other thread, waiting for their
answer (``Service.enqueue_sync`` uses it when the service is not started).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "servcore-sync") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(
        self, coroutine: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop | None = None
    ) -> T:
        """Run ``coroutine`` on ``loop`` (default: this thread's) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, loop or self.loop).result()
