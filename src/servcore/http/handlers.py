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
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from servcore.http import answers, validation
from servcore.http.bodies import read_body
from servcore.http.serialization import (
    counts_to_json,
    cron_to_json,
    encode,
    job_to_json,
    node_to_json,
    queue_to_json,
    task_to_json,
)
from servcore.http.validation import BadRequest
from servcore.job_reads import JobPage, JobQuery
from servcore.job_requests import JobRequestError
from servcore.jobs import valid_queue_name
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
    return json_response(await nodes_json(service))


async def nodes_json(service: Service) -> list[dict[str, Any]]:
    return [node_to_json(node) for node in await service.nodes()]


async def list_cron(request: Request, service: Service) -> Response:
    """``GET /cron``: every cron entry, when it last ran (its tick) and runs
    next, and the job it last inserted."""
    schedule = await service.cron_schedule()
    last_jobs = await service.cron_last_jobs()
    return json_response(
        [
            cron_to_json(entry, last_tick, next_tick, last_jobs.get(entry.name))
            for entry, last_tick, next_tick in schedule
        ]
    )


async def list_tasks(request: Request, service: Service) -> Response:
    """``GET /tasks``: the tasks this node has handlers for, with their defaults."""
    return json_response([task_to_json(spec, queue) for spec, queue in service.tasks()])


async def metrics(request: Request, service: Service) -> Response:
    """``GET /metrics``: this process's Prometheus metrics (text exposition)."""
    if service.metrics is None:
        return error_response("Metrics are switched off (SERVCORE_METRICS=0)", 404)
    return Response(await service.metrics.scrape(), media_type=METRICS_CONTENT_TYPE)


RATE_MINUTES = 5  # the window of the per-minute rates /stats/history gives each queue


async def history(request: Request, service: Service) -> Response:
    """``GET /stats/history``: jobs done and failed in each of the last 60
    minutes (of one ``queue``, or all), and each queue's recent rates."""
    queue = request.query_params.get("queue") or None
    if queue is not None and not valid_queue_name(queue):
        return error_response(
            "'queue' must be a queue name: 1-100 letters, digits, '_', '-' or '.'"
        )
    return json_response(await history_json(service, queue))


async def history_json(service: Service, queue: str | None = None) -> dict[str, Any]:
    finished = await service.history()
    minutes = [
        {"at": format_timestamp(minute), "done": done, "failed": failed}
        for minute, done, failed in finished.per_minute(queue)
    ]
    rates = {}
    for name in sorted(finished.by_queue):
        done, failed = finished.rate(name, RATE_MINUTES)
        rates[name] = {"done_per_minute": done, "failed_per_minute": failed}
    return {"minutes": minutes, "rate_minutes": RATE_MINUTES, "queues": rates}


async def stats(request: Request, service: Service) -> Response:
    return json_response(await stats_json(service))


async def stats_json(service: Service) -> dict[str, int]:
    return counts_to_json(await service.count_jobs())


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
            return json_response([], headers=_page_headers(request, JobPage([], 0), params))
        params = dataclasses.replace(params, queue=queue)
    page = await service.list_jobs(
        JobQuery(
            status=params.status,
            queue=params.queue,
            offset=(params.page - 1) * params.per_page,
            limit=params.per_page,
            task=params.task,
            search=params.search,
            after_id=params.after_id,
        )
    )
    now = service.clock.now()
    return json_response(
        [job_to_json(job, now) for job in page.jobs],
        headers=_page_headers(request, page, params),
    )


def _page_headers(request: Request, page: JobPage, params: validation.ListParams) -> dict[str, str]:
    """The total (``X-Total-Count-Estimate: true`` when it is estimated, past
    the count cap), the page, and a ``Link`` to the next page by keyset when
    this one is full."""
    headers = {
        "X-Total-Count": str(page.total),
        "X-Page": str(params.page),
        "X-Per-Page": str(params.per_page),
    }
    if not page.exact:
        headers["X-Total-Count-Estimate"] = "true"
    if page.jobs and len(page.jobs) == params.per_page:
        query = {k: v for k, v in request.query_params.items() if k not in ("page", "after_id")}
        query["after_id"] = str(page.jobs[-1].id)
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return headers


async def get_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``GET /jobs/{id}``."""
    wait = request.query_params.get("wait")
    return _response(await answers.get_job(service, request.path_params["id"], queue, wait))


async def cancel_jobs(request: Request, service: Service) -> Response:
    """``POST /jobs/cancel``: ``{"ids": [...]}`` or ``{"filter": {...}}``."""
    try:
        body = await read_body(request, service.config.http.max_body_bytes)
    except BadRequest as problem:
        return error_response(problem.message, problem.status)
    return _response(await answers.cancel_jobs(service, body))


async def retry_jobs(request: Request, service: Service) -> Response:
    """``POST /jobs/retry``: ``{"ids": [...]}`` or ``{"filter": {...}}``."""
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
    return json_response(await queues_json(service))


async def queues_json(service: Service) -> list[dict[str, Any]]:
    listing = await service.queues()
    unserved = await service.unserved_queues([info for info, _ in listing])
    now = service.clock.now()
    return [
        queue_to_json(info, concurrency, now, unserved=info.name in unserved)
        for info, concurrency in listing
    ]


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
