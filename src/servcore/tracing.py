"""OpenTelemetry traces: a span per HTTP request and per job run, linked.

Optional: ``pip install 'servcore[otel]'``, then ``SERVCORE_TRACING=1`` (or
``service.enable_tracing()``). Spans go to the global tracer provider, which
you set up as OpenTelemetry says (``opentelemetry-instrument``, or
``trace.set_tracer_provider(...)`` with the exporter of your choice).

Like the metrics, tracing is a set of telemetry handlers. An HTTP request's
span is current while the request is answered, so a job submitted by it
records the request's W3C ``traceparent`` (the job's ``trace_context``).
The job's span, when a worker runs it (on any node, maybe much later), is a
child of that request's span and links to it too; it is current while the
handler runs, so the handler's own spans nest under it.
"""

from __future__ import annotations

import contextvars
from typing import Any

from servcore.errors import ConfigError
from servcore.telemetry import Measurements, Metadata, Telemetry

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]

HANDLER_ID = "servcore-tracing"
_propagator = TraceContextTextMapPropagator() if trace is not None else None
# The span of the request or job run under way in this task, the context token
# that made it current, and the token to put back the one it was started in
# (a request answered inside a job run nests: a stack).
_current: contextvars.ContextVar[tuple[Any, object, Any] | None] = contextvars.ContextVar(
    "servcore_span", default=None
)
_PROPAGATED = (b"traceparent", b"tracestate")


def available() -> bool:
    return trace is not None


class Tracing:
    def __init__(self, telemetry: Telemetry, tracer_provider: Any = None) -> None:
        if trace is None:
            raise ConfigError(
                "tracing needs OpenTelemetry: pip install 'servcore[otel]' "
                "(or switch SERVCORE_TRACING off)"
            )
        self._telemetry = telemetry
        self._tracer = trace.get_tracer("servcore", tracer_provider=tracer_provider)
        self._handler_id = f"{HANDLER_ID}-{id(self):x}"

    def attach(self) -> None:
        # One id: if one of them fails and is detached, so are the others, and
        # no span is begun that nothing would end.
        self._telemetry.attach_many(
            self._handler_id,
            {
                "http.start": self._request_started,
                "http.stop": self._request_finished,
                "job.start": self._job_started,
                "job.stop": self._job_finished,
                "job.exception": self._job_finished,
            },
        )

    def detach(self) -> None:
        self._telemetry.detach(self._handler_id)

    @staticmethod
    def trace_context() -> str | None:
        """The current span's W3C traceparent, or None outside of any span."""
        assert _propagator is not None
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        return carrier.get("traceparent")

    def _begin(self, span: Any) -> None:
        token = otel_context.attach(trace.set_span_in_context(span))
        outer = _current.set(None)  # placeholder: the reset token must exist first
        _current.set((span, token, outer))

    @staticmethod
    def _end() -> Any:
        current = _current.get()
        if current is None:
            return None
        span, token, outer = current
        _current.reset(outer)  # back to the span it began in, if any
        otel_context.detach(token)  # type: ignore[arg-type]
        return span

    def _request_started(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        assert _propagator is not None
        method = metadata["method"]
        # A client that traces sends its context: the request's span continues it.
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in metadata.get("headers", ())
            if name in _PROPAGATED
        }
        span = self._tracer.start_span(
            method,
            context=_propagator.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": metadata["path"]},
        )
        self._begin(span)

    def _request_finished(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        span = self._end()
        if span is None:
            return
        route, status = metadata["route"], int(metadata["status"])
        span.update_name(f"{metadata['method']} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _job_started(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        assert _propagator is not None
        parent = None
        links = []
        traceparent = metadata.get("trace_context")
        if traceparent:
            parent = _propagator.extract({"traceparent": traceparent})
            remote = trace.get_current_span(parent).get_span_context()
            if remote.is_valid:
                links.append(Link(remote, {"servcore.link": "enqueued by"}))
        span = self._tracer.start_span(
            f"job {metadata['task'] or '(default)'}",
            context=parent if parent is not None else otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "servcore.queue": metadata["queue"],
                "servcore.task": metadata["task"],
                "servcore.job_id": metadata["job_id"],
                "servcore.attempt": metadata["attempt"],
                "servcore.node": metadata["node"],
            },
        )
        self._begin(span)

    def _job_finished(self, event: str, measurements: Measurements, metadata: Metadata) -> None:
        span = self._end()
        if span is None:
            return
        outcome = metadata["outcome"]
        span.set_attribute("servcore.outcome", outcome)
        if outcome in ("retry", "failed"):
            span.set_status(Status(StatusCode.ERROR, str(metadata.get("error", ""))[:200]))
        span.end()
