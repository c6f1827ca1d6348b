"""The route handlers as plain functions (the seed's ``Core.HTTP.Handlers``).

Each takes the request, the service and, where it applies, the queue the
route is for, and returns a response. Mount them one by one in your own
Starlette or FastAPI app, or use :func:`servcore.http.app.job_routes`::

    Route("/email_jobs", partial(handlers.create_job, service=svc, queue="email"),
          methods=["POST"])
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from servcore.http import validation
from servcore.http.serialization import counts_to_json, encode, job_to_json
from servcore.http.validation import (
    MISSING_PAYLOAD,
    SCHEDULE_FIELDS,
    BadRequest,
    read_json_object,
)
from servcore.jobs import Job
from servcore.service import JobRequestError, Service
from servcore.store.base import JobQuery
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
    problems = service.problems()
    if problems:
        return json_response({"status": "DEGRADED", "problems": problems}, 503)
    return json_response({"status": "OK"})


async def stats(request: Request, service: Service) -> Response:
    return json_response(counts_to_json(await service.count_jobs()))


async def _accept(body: dict[str, Any], service: Service, queue: str | None, missing: str) -> Job:
    try:
        options = validation.job_options(body, missing_message=missing)
        if queue is not None:
            if options.get("queue", queue) != queue:
                raise BadRequest(f"this route submits to queue {queue!r}; drop 'queue'")
            options["queue"] = queue
        payload = options.pop("payload")
        new_job = service.build_job(payload, **options)
    except JobRequestError as error:
        raise BadRequest(str(error)) from None
    (job,) = await service.submit([new_job])
    return job


async def create_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs``: 202 once the job is stored."""
    try:
        body = await read_json_object(request, service.config.max_body_bytes)
        job = await _accept(body, service, queue, MISSING_PAYLOAD)
    except BadRequest as error:
        return error_response(error.message, error.status)
    return json_response({"message": "Job accepted", "job_id": job.id}, 202)


async def schedule_job(request: Request, service: Service, queue: str | None = None) -> Response:
    """``POST /jobs/schedule``: like ``create_job``, with ``run_at`` required."""
    try:
        body = await read_json_object(request, service.config.max_body_bytes)
        if not isinstance(body.get("payload"), dict) or not isinstance(body.get("run_at"), str):
            raise BadRequest(SCHEDULE_FIELDS)
        if "delay" in body:
            raise BadRequest("'delay' does not go with /jobs/schedule: give 'run_at' only")
        job = await _accept(body, service, queue, SCHEDULE_FIELDS)
    except BadRequest as error:
        return error_response(error.message, error.status)
    return json_response(
        {"message": "Job scheduled", "job_id": job.id, "run_at": format_timestamp(job.run_at)},
        202,
    )


async def list_jobs(request: Request, service: Service, queue: str | None = None) -> Response:
    """``GET /jobs``: newest first; ``status``, ``page``, ``per_page``, ``queue``."""
    try:
        params = validation.list_params(dict(request.query_params))
    except BadRequest as error:
        return error_response(error.message, error.status)
    if queue is not None:
        if params.queue not in (None, queue):
            return json_response([], headers=_page_headers(0, params.page, params.per_page))
        params = validation.ListParams(params.status, queue, params.page, params.per_page)
    page = await service.list_jobs(
        JobQuery(
            status=params.status,
            queue=params.queue,
            offset=(params.page - 1) * params.per_page,
            limit=params.per_page,
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
    try:
        job_id = validation.job_id(request.path_params["id"])
    except BadRequest as error:
        return error_response(error.message, error.status)
    job = await service.get_job(job_id)
    if job is None or (queue is not None and job.queue != queue):
        return error_response("Job not found", 404)
    return json_response(job_to_json(job, service.clock.now()))
