"""The route handlers as plain functions (the seed's ``Core.HTTP.Handlers``).

Each takes the request, the service and, where it applies, the queue the
route is for, and returns a response. Mount them one by one in your own
Starlette or FastAPI app, or use :func:`servcore.http.app.job_routes`::

    Route("/email_jobs", partial(handlers.create_job, service=svc, queue="email"),
          methods=["POST"])
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from servcore.http import answers, validation
from servcore.http.serialization import (
    counts_to_json,
    cron_to_json,
    encode,
    job_to_json,
    node_to_json,
    queue_to_json,
)
from servcore.http.validation import BadRequest, read_body
from servcore.job_reads import JobQuery
from servcore.job_requests import JobRequestError
from servcore.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from servcore.service import Service
from servcore.timestamps import format_timestamp

JSON = "application/json"


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(encode(content), status, headers, media_type=JSON)


def error_response(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


async def root(request: Request, service: Service) -> Response:
    return PlainTextResponse("Server is running")


async def health(request: Request, service: Service) -> Response:
    """``GET /health``: 503 while a part is down; ``warnings`` name what looks
    wrong without being down (a queue nobody serves), still 200."""
    problems = service.problems()
    warnings = await service.warnings()
    body: dict[str, Any] = (
        {"status": "DEGRADED", "problems": problems} if problems else {"status": "OK"}
    )
    if warnings:
        body["warnings"] = warnings
    return json_response(body, 503 if problems else 200)


async def nodes(request: Request, service: Service) -> Response:
    """``GET /nodes``: worker nodes alive now, which queues they run, who leads."""
    return json_response([node_to_json(node) for node in await service.nodes()])


async def list_cron(request: Request, service: Service) -> Response:
    """``GET /cron``: every cron entry, when it last ran (its tick) and runs next."""
    return json_response([cron_to_json(*entry) for entry in await service.cron_schedule()])


async def metrics(request: Request, service: Service) -> Response:
    """``GET /metrics``: this process's Prometheus metrics (text exposition)."""
    if service.metrics is None:
        return error_response("Metrics are switched off (SERVCORE_METRICS=0)", 404)
    return Response(await service.metrics.scrape(), media_type=METRICS_CONTENT_TYPE)


async def history(request: Request, service: Service) -> Response:
    """``GET /stats/history``: jobs done and failed in each of the last 60 minutes."""
    minutes = [
        {"at": format_timestamp(minute), "done": done, "failed": failed}
        for minute, done, failed in await service.history()
    ]
    return json_response({"minutes": minutes})


async def stats(request: Request, service: Service) -> Response:
    return json_response(counts_to_json(await service.count_jobs()))


def _response(answer: answers.Answer) -> Response:
    status, body = answer
    return Response(body, status, media_type=JSON)


async def create_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs``: 202 once the job is stored."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    key = request.headers.get("idempotency-key")
    return _response(await answers.create_job(service, body, queue, key))


async def create_jobs(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs/batch``: up to 1,000 jobs in one transaction."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    return _response(await answers.create_jobs(service, body, queue))


async def schedule_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs/schedule``: like ``create_job``, with ``run_at`` required."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    return _response(await answers.schedule_job(service, body, queue))


async def list_jobs(request: Request, service: Service, queue: str | None = None) -> Response:
    """``GET /jobs``: newest first; ``status``, ``page``, ``per_page``, ``queue``,
    ``task``, and ``q`` (a job id, or text in the payload)."""
    try:
        params = validation.list_params(dict(request.query_params))
    except BadRequest as error:
        return error_response(error.message, error.status)
    if queue is not None:
        if params.queue not in (None, queue):
            return json_response([], headers=_page_headers(0, params.page, params.per_page))
        params = dataclasses.replace(params, queue=queue)
    page = await service.list_jobs(
        JobQuery(
            status=params.status,
            queue=params.queue,
            offset=(params.page - 1) * params.per_page,
            limit=params.per_page,
            task=params.task,
            search=params.search,
        )
    )
    now = service.clock.now()
    return json_response(
        [job_to_json(job, now) for job in page.jobs],
        headers=_page_headers(page.total, params.page, params.per_page),
    )


def _page_headers(total: int, page: int, per_page: int) -> dict[str, str]:
    return {"X-Total-Count": str(total), "X-Page": str(page), "X-Per-Page": str(per_page)}


async def get_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``GET /jobs/{id}``."""
    return _response(await answers.get_job(service, request.path_params["id"], queue))


async def cancel_jobs(request: Request, service: Service) -> Response:
    """``POST /jobs/cancel``: ``{"ids": [...]}``."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    return _response(await answers.cancel_jobs(service, body))


async def retry_jobs(request: Request, service: Service) -> Response:
    """``POST /jobs/retry``: ``{"ids": [...]}``."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    return _response(await answers.retry_jobs(service, body))


async def cancel_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs/{id}/cancel``."""
    return _response(await answers.cancel_job(service, request.path_params["id"], queue))


async def retry_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs/{id}/retry``."""
    return _response(await answers.retry_job(service, request.path_params["id"], queue))


async def list_queues(request: Request, service: Service) -> Response:
    """``GET /queues``: per queue depth, scheduled, running, failed, paused, concurrency,
    and the age in seconds of the oldest job waiting to start."""
    listing = await service.queues()
    unserved = await service.unserved_queues([info for info, _ in listing])
    now = service.clock.now()
    return json_response(
        [
            queue_to_json(info, concurrency, now, unserved=info.name in unserved)
            for info, concurrency in listing
        ]
    )


async def pause_queue(request: Request, service: Service) -> Response:
    """``POST /queues/{name}/pause``."""
    return await _pausing(request, service, pause=True)


async def resume_queue(request: Request, service: Service) -> Response:
    """``POST /queues/{name}/resume``."""
    return await _pausing(request, service, pause=False)


async def _pausing(request: Request, service: Service, *, pause: bool) -> Response:
    name = request.path_params["name"]
    try:
        await (service.pause_queue if pause else service.resume_queue)(name)
    except JobRequestError as problem:
        return error_response(str(problem))
    message = "Queue paused" if pause else "Queue resumed"
    return json_response({"message": message, "queue": name})
