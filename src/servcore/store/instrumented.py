"""A store that tells ``store.call`` (operation, duration) for each job verb.

Wraps any backend at the seam, so that no backend measures itself. While
nothing listens, a call costs one dictionary lookup more.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from servcore.store.base import JobReader, JobWriter, Store
from servcore.telemetry import Telemetry

# The job verbs, read off the protocols: reads and writes, not life cycle.
TIMED = frozenset(
    name
    for protocol in (JobReader, JobWriter)
    for name, member in vars(protocol).items()
    if inspect.iscoroutinefunction(member)
)


class InstrumentedStore:
    def __init__(self, store: Store, telemetry: Telemetry) -> None:
        self.inner = store
        self._telemetry = telemetry
        self._kind = type(store).__name__

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name in TIMED:
            value = self._timed(name, value)
            setattr(self, name, value)  # found directly from now on
        return value

    def _timed(
        self, operation: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        telemetry = self._telemetry
        metadata = {"operation": operation, "store": self._kind}

        async def timed(*args: Any, **kwargs: Any) -> Any:
            if not telemetry.listening("store.call"):
                return await call(*args, **kwargs)
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                duration = time.perf_counter() - started
                telemetry.emit("store.call", {"duration": duration}, metadata)

        return timed


def instrumented(store: Store, telemetry: Telemetry) -> Store:
    """``store``, telling ``telemetry`` how long each job verb takes."""
    if isinstance(store, InstrumentedStore):
        store = store.inner
    return cast(Store, InstrumentedStore(store, telemetry))
