"""OpenTelemetry: a span per request and per job run, the job's linked to its request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from servcore import Discard, Job, Service, create_app
from tests.acceptance.conftest import client_for
from tests.conftest import fast_config, finished, make_store, wait_for


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    backend: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> AsyncIterator[Service]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = Service(make_store(backend, tmp_path), config=fast_config())
    service.enable_tracing(provider)
    try:
        yield service
    finally:
        await service.stop(grace=0)


def spans(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is kind]


async def test_a_job_span_is_the_child_of_the_request_that_enqueued_it(
    traced: Service, exporter: InMemorySpanExporter
) -> None:
    inner: list[bool] = []

    @traced.task("report")
    async def report(job: Job) -> str:
        # The job's span is current while the handler runs.
        inner.append(trace.get_current_span().is_recording())
        return "ok"

    client = client_for(create_app(traced, manage_service=False))
    await traced.start()
    try:
        response = await client.post("/jobs", json={"payload": {"task": "report"}})
        job_id = response.json()["job_id"]
        job = await finished(traced, job_id)
    finally:
        await client.aclose()
    await wait_for(lambda: bool(spans(exporter, SpanKind.CONSUMER)), message="the job span")

    (request,) = [s for s in spans(exporter, SpanKind.SERVER) if s.name == "POST /jobs"]
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/jobs"
    assert request.attributes["http.response.status_code"] == 202
    assert job.trace_context is not None
    assert f"{request.context.trace_id:032x}" in job.trace_context

    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert run.name == "job report"
    assert run.parent is not None
    assert run.parent.span_id == request.context.span_id
    assert run.context.trace_id == request.context.trace_id
    assert [link.context.span_id for link in run.links] == [request.context.span_id]
    assert run.attributes is not None
    assert run.attributes["servcore.queue"] == "default"
    assert run.attributes["servcore.task"] == "report"
    assert run.attributes["servcore.job_id"] == job_id
    assert run.attributes["servcore.attempt"] == 1
    assert run.attributes["servcore.outcome"] == "done"
    assert inner == [True]


async def test_a_failed_job_span_says_so_and_jobs_from_python_start_their_own_trace(
    traced: Service, exporter: InMemorySpanExporter
) -> None:
    @traced.task("doomed")
    async def doomed(job: Job) -> None:
        raise Discard("cannot")

    await traced.start()
    job = await traced.enqueue("doomed")  # no request span around it
    assert job.trace_context is None
    await finished(traced, job.id)
    await wait_for(lambda: bool(spans(exporter, SpanKind.CONSUMER)), message="the job span")
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert run.parent is None
    assert run.links == ()
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None
    assert run.attributes["servcore.outcome"] == "failed"


def test_tracing_is_off_by_default_and_switched_on_by_the_environment() -> None:
    from servcore.config import env_overrides

    assert Service("memory://").tracing is None
    service = Service("memory://")
    service.configure(**env_overrides({"SERVCORE_TRACING": "1"}))
    assert service.tracing is not None
    assert service.telemetry.listening("job.start")


def test_tracing_without_opentelemetry_installed_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from servcore import tracing
    from servcore.errors import ConfigError

    monkeypatch.setattr(tracing, "trace", None)
    with pytest.raises(ConfigError, match=r"pip install 'servcore\[otel\]'"):
        Service("memory://").enable_tracing()


async def test_a_request_from_a_traced_client_continues_its_trace(
    traced: Service, exporter: InMemorySpanExporter
) -> None:
    client = client_for(create_app(traced, manage_service=False))
    await traced.start(workers=False)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    try:
        await client.get("/stats", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"})
    finally:
        await client.aclose()
    (request,) = spans(exporter, SpanKind.SERVER)
    assert f"{request.context.trace_id:032x}" == trace_id
    assert request.parent is not None
    assert f"{request.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_a_request_answered_inside_a_job_run_nests_and_both_end(
    traced: Service, exporter: InMemorySpanExporter
) -> None:
    app = create_app(traced, manage_service=False)

    @traced.task("calls_api")
    async def calls_api(job: Job) -> int:
        async with client_for(app) as inner:
            return (await inner.get("/stats")).status_code

    await traced.start()
    job = await traced.enqueue("calls_api")
    assert (await finished(traced, job.id)).result == 200
    await wait_for(lambda: bool(spans(exporter, SpanKind.CONSUMER)), message="the job span")
    (run,) = spans(exporter, SpanKind.CONSUMER)
    (request,) = spans(exporter, SpanKind.SERVER)
    assert request.parent is not None
    assert request.parent.span_id == run.context.span_id
