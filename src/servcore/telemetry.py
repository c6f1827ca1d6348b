"""Telemetry: named events that anyone can attach a handler to.

The seam between what happens (a job ran, a request was answered, a store
call took so long) and what is done with it (Prometheus metrics, logs,
traces, your own code)::

    def on_stop(event: str, measurements: dict, metadata: dict) -> None:
        print(event, metadata["job_id"], measurements["duration"])

    service.telemetry.attach("my-timer", ["job.stop", "job.exception"], on_stop)
    service.telemetry.detach("my-timer")

A handler runs inline, where the event happens, so it must be quick and must
not block. One that raises is logged and detached (with every handler attached
under its id); the job or request it was called for carries on untouched.

Events (durations in seconds; every job event's metadata has ``queue``,
``task``, ``job_id``, ``attempt``, ``node`` and ``trace_context``, the
enqueuing request's W3C traceparent when tracing is on, else None):

==================== ================================= =====================================
event                measurements                      metadata beyond the job's
==================== ================================= =====================================
job.start            queue_latency (run_at → start)
job.stop             duration, queue_latency           outcome = "done"
job.exception        duration, queue_latency           outcome: retry, failed, cancelled,
                                                       lost (lease taken over), released
                                                       (shutdown); error
job.retry_scheduled  delay                             error
job.discarded                                          error (no attempts left, or Discard)
job.cancelled                                          reason
job.rescued          count                             job_ids, failed_ids (no job fields)
http.start                                             method, path, headers (the ASGI
                                                       list; no job fields)
http.stop            duration                          method, path, status, route (its
                                                       template: /jobs/{id})
store.call           duration                          operation, store
queue.depth          available, scheduled, running,    queue, paused (no job fields)
                     oldest_age
==================== ================================= =====================================

The seed's events map onto these: ``[:core, :job, :start]`` → ``job.start``,
``[:core, :job, :stop]`` → ``job.stop``, ``[:core, :job, :error]`` →
``job.exception``, ``[:server, :http, :start]`` → ``http.start``,
``[:server, :http, :stop]`` → ``http.stop``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("servcore.telemetry")

Measurements = Mapping[str, float]
Metadata = Mapping[str, Any]
EventHandler = Callable[[str, Measurements, Metadata], None]

EVENTS = (
    "job.start",
    "job.stop",
    "job.exception",
    "job.retry_scheduled",
    "job.discarded",
    "job.cancelled",
    "job.rescued",
    "http.start",
    "http.stop",
    "store.call",
    "queue.depth",
)


class Telemetry:
    """Handlers by event; see the module docstring."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[str, EventHandler]]] = {}

    def attach(self, handler_id: str, events: Iterable[str], handler: EventHandler) -> None:
        """Call ``handler(event, measurements, metadata)`` on each of ``events``."""
        names = [events] if isinstance(events, str) else list(events)
        unknown = sorted(set(names) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
        if any(handler_id == known for known, _ in self._all()):
            raise ValueError(f"a handler {handler_id!r} is already attached")
        for name in names:
            self._handlers.setdefault(name, []).append((handler_id, handler))

    def attach_many(self, handler_id: str, handlers: Mapping[str, EventHandler]) -> None:
        """A handler per event, under one id: detached together (also when one fails)."""
        unknown = sorted(set(handlers) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
        if any(handler_id == known for known, _ in self._all()):
            raise ValueError(f"a handler {handler_id!r} is already attached")
        for name, handler in handlers.items():
            self._handlers.setdefault(name, []).append((handler_id, handler))

    def detach(self, handler_id: str) -> bool:
        """Stop calling the handler; False if no handler has that id."""
        found = False
        for name, handlers in list(self._handlers.items()):
            kept = [(known, handler) for known, handler in handlers if known != handler_id]
            found = found or len(kept) != len(handlers)
            if kept:
                self._handlers[name] = kept
            else:
                del self._handlers[name]
        return found

    def listening(self, event: str) -> bool:
        """Whether anything is attached to ``event`` (skip building it if not)."""
        return event in self._handlers

    def listening_any(self, events: frozenset[str]) -> bool:
        return not self._handlers.keys().isdisjoint(events)

    def emit(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for handler_id, handler in handlers:
            try:
                handler(event, measurements, metadata)
            except Exception:
                log.exception(
                    "Telemetry handler %r failed on %s; it is detached", handler_id, event
                )
                self.detach(handler_id)

    def _all(self) -> Iterable[tuple[str, EventHandler]]:
        for handlers in self._handlers.values():
            yield from handlers
