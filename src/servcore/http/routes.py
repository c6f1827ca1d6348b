"""Every endpoint of the API, each defined once.

One :class:`Endpoint` per method and path says who may call it (its scope),
what it takes and answers (its OpenAPI operation), which handler serves it,
and whether the ASGI path in :mod:`servcore.http.asgi` answers it before
Starlette. :mod:`servcore.http.app` builds the routes from :data:`ENDPOINTS`,
the guard reads each route's scope from them, and ``/openapi.json`` is built
from them, so the three cannot disagree. Adding an endpoint is one entry
here and its handler.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from servcore.http import answers, handlers
from servcore.http.endpoints import JOBS, Endpoint, Handler
from servcore.http.openapi import (
    BAD,
    ERROR,
    ID,
    IDS_BODY,
    JOB,
    JOB_REQUEST,
    NO_NUL,
    NODE,
    QUEUE_NAME,
    TOO_LARGE,
    UNSUPPORTED_ENCODING,
    build_document,
    error,
    json_answer,
    path_parameter,
    query_parameter,
)
from servcore.http.validation import MAX_JOB_ID, MAX_PAGE, MAX_PER_PAGE, MAX_SEARCH, MAX_WAIT
from servcore.job_reads import EXACT_COUNT_CAP
from servcore.service import Service


def _id_control(action: str, summary: str, handler: Handler) -> Endpoint:
    return Endpoint(
        "POST",
        f"{JOBS}/{{id}}/{action}",
        "write",
        handler,
        summary=summary,
        parameters=(path_parameter("id", ID),),
        responses={
            "200": json_answer("Done; the job as it now is", {"type": "object"}),
            "400": error("Bad id"),
            "404": error("Job not found"),
            "409": error("The job's state does not allow it"),
        },
        per_queue=True,
    )


def _bulk(action: str, summary: str, handler: Handler, rule: answers.BulkFilter) -> Endpoint:
    by_filter = {
        "type": "object",
        "required": ["filter"],
        "additionalProperties": False,
        "properties": {
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "description": "Every job GET /jobs would list with these parameters "
                f"(status: {', '.join(rule.statuses)}; by default {rule.default})",
                "properties": {
                    "status": {"enum": list(rule.statuses)},
                    "queue": NO_NUL,
                    "task": NO_NUL,
                    "q": {**NO_NUL, "maxLength": MAX_SEARCH},
                },
            }
        },
    }
    return Endpoint(
        "POST",
        f"{JOBS}/{action}",
        "write",
        handler,
        summary=summary,
        body={"oneOf": [IDS_BODY, by_filter]},
        responses={
            "200": json_answer("The ids that changed", {"type": "object"}),
            "400": json_answer("Bad request", ERROR),
        },
    )


def _pausing(action: str, summary: str, handler: Handler) -> Endpoint:
    return Endpoint(
        "POST",
        f"/queues/{{name}}/{action}",
        "admin",
        handler,
        summary=summary,
        parameters=(path_parameter("name", QUEUE_NAME),),
        responses={"200": json_answer("Done", {"type": "object"}), "400": error("Bad name")},
    )


async def _openapi(request: Request, service: Service) -> Response:
    return handlers.json_response(openapi_document())


_STATUS_FILTER = ["queued", "running", "done", "failed", "cancelled", "scheduled", "available"]
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "Taken as the job's unique_key",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
_ONE_BATCH_JOB = {"allOf": [JOB_REQUEST, {"properties": {"unique_key": {"type": "null"}}}]}
_SCHEDULED_JOB = {
    "allOf": [
        JOB_REQUEST,
        {
            "required": ["payload", "run_at"],
            "properties": {"run_at": {"type": "string"}, "delay": False},
        },
    ]
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/", None, handlers.root, responses={"200": {"description": "Server is running"}}
    ),
    Endpoint(
        "GET",
        "/health",
        "read",
        handlers.health,
        responses={
            "200": json_answer(
                "Healthy; 'warnings' (when present) names queues whose jobs have been "
                "ready for over a minute with no live worker node running them",
                {"type": "object"},
            ),
            "503": json_answer("A part is down", {"type": "object"}),
        },
        public_if=lambda config: config.auth.public_health,
    ),
    Endpoint(
        "GET",
        "/stats",
        "read",
        handlers.stats,
        responses={"200": json_answer("Counts by status", {"type": "object"})},
    ),
    Endpoint(
        "GET",
        "/stats/history",
        "read",
        handlers.history,
        summary="Jobs done and failed in each of the last 60 minutes, and each queue's rates",
        parameters=(query_parameter("queue", QUEUE_NAME, "Count this queue's jobs only"),),
        responses={
            "200": json_answer(
                "minutes: per minute, oldest first; queues: done_per_minute and "
                "failed_per_minute of each queue over the last rate_minutes",
                {"type": "object"},
            ),
            "400": BAD,
        },
    ),
    Endpoint(
        "GET",
        "/metrics",
        "read",
        handlers.metrics,
        summary="This process's Prometheus metrics",
        responses={
            "200": {
                "description": "Prometheus text exposition format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "404": json_answer("Metrics are switched off", ERROR),
        },
        public_if=lambda config: config.auth.public_metrics,
    ),
    Endpoint(
        "GET",
        "/nodes",
        "read",
        handlers.nodes,
        responses={"200": json_answer("Live worker nodes", {"type": "array", "items": NODE})},
    ),
    Endpoint(
        "POST",
        JOBS,
        "write",
        handlers.create_job,
        parameters=(_IDEMPOTENCY_KEY,),
        body=JOB_REQUEST,
        responses={
            "202": json_answer("Stored", {"type": "object"}),
            "400": BAD,
            "413": TOO_LARGE,
            "415": UNSUPPORTED_ENCODING,
        },
        per_queue=True,
        fast=answers.raw_create_job,
    ),
    Endpoint(
        "GET",
        JOBS,
        "read",
        handlers.list_jobs,
        parameters=(
            query_parameter("status", {"enum": _STATUS_FILTER}),
            query_parameter("queue", NO_NUL),
            query_parameter("task", NO_NUL),
            query_parameter(
                "q",
                {**NO_NUL, "maxLength": MAX_SEARCH},
                "A job id, or text found in the payload",
            ),
            query_parameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                f"page x per_page at most {EXACT_COUNT_CAP}; further pages by after_id",
            ),
            query_parameter("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
            query_parameter(
                "after_id",
                {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
                "Keyset paging: jobs older than this id (the last of the previous page)",
            ),
        ),
        responses={
            "200": json_answer(
                "Newest first. X-Total-Count has the total: exact, or estimated past "
                f"{EXACT_COUNT_CAP} matches of a task or text filter (then "
                "X-Total-Count-Estimate: true). A full page has a Link header to the next "
                '(rel="next", by after_id)',
                {"type": "array", "items": JOB},
            ),
            "400": BAD,
        },
        per_queue=True,
    ),
    Endpoint(
        "POST",
        f"{JOBS}/schedule",
        "write",
        handlers.schedule_job,
        body=_SCHEDULED_JOB,
        responses={
            "202": json_answer("Stored", {"type": "object"}),
            "400": BAD,
            "413": TOO_LARGE,
            "415": UNSUPPORTED_ENCODING,
        },
        per_queue=True,
    ),
    Endpoint(
        "POST",
        f"{JOBS}/batch",
        "write",
        handlers.create_jobs,
        body={
            "type": "object",
            "required": ["jobs"],
            "additionalProperties": False,
            "properties": {
                "jobs": {
                    "type": "array",
                    "items": _ONE_BATCH_JOB,
                    "minItems": 1,
                    "maxItems": answers.MAX_BATCH,
                }
            },
        },
        responses={
            "202": json_answer("All stored, in one transaction", {"type": "object"}),
            "400": BAD,
            "413": TOO_LARGE,
            "415": UNSUPPORTED_ENCODING,
        },
        per_queue=True,
    ),
    Endpoint(
        "GET",
        "/queues",
        "read",
        handlers.list_queues,
        responses={
            "200": json_answer(
                "Every queue: depth, scheduled, running, done, failed, cancelled, "
                "paused, this node's concurrency, oldest_job_age (s), unserved (ready jobs "
                "waiting over a minute with no live worker node running the queue)",
                {"type": "array", "items": {"type": "object"}},
            )
        },
    ),
    Endpoint(
        "GET",
        "/cron",
        "read",
        handlers.list_cron,
        responses={
            "200": json_answer(
                "Every cron entry: name, expression, timezone, task, queue, "
                "payload, priority, max_attempts, last_run_at (its last tick, "
                "or null), next_run_at, last_job_id (the job it last inserted, or null)",
                {"type": "array", "items": {"type": "object"}},
            )
        },
    ),
    Endpoint(
        "GET",
        "/tasks",
        "read",
        handlers.list_tasks,
        summary="The tasks this node has handlers for",
        responses={
            "200": json_answer(
                "By name: name, queue, max_attempts, timeout (s or null), backoff "
                "(base s or null: the service's), executor (async, thread, process)",
                {"type": "array", "items": {"type": "object"}},
            )
        },
    ),
    _pausing("pause", "Start no more jobs of the queue (kept on restart)", handlers.pause_queue),
    _pausing("resume", "Start the queue's jobs again", handlers.resume_queue),
    _bulk(
        "cancel",
        "Cancel every listed (or matching) job that can be (queued, scheduled, running)",
        handlers.cancel_jobs,
        answers.CANCEL_FILTER,
    ),
    _bulk(
        "retry",
        "Queue again every listed (or matching) job that failed or was cancelled",
        handlers.retry_jobs,
        answers.RETRY_FILTER,
    ),
    _id_control("cancel", "Cancel a queued, scheduled or running job", handlers.cancel_job),
    _id_control("retry", "Queue a failed or cancelled job again, due now", handlers.retry_job),
    Endpoint(
        "GET",
        f"{JOBS}/{{id}}",
        "read",
        handlers.get_job,
        parameters=(
            path_parameter("id", ID),
            query_parameter(
                "wait",
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT},
                "Answer once the job has finished (done, failed or cancelled), or after "
                "this many seconds with its state then; without it, at once",
            ),
        ),
        responses={
            "200": json_answer(
                "The job (with wait: finished, or as it is when the wait ran out)", JOB
            ),
            "400": BAD,
            "404": error("Job not found"),
        },
        per_queue=True,
        fast=answers.raw_get_job,
    ),
    Endpoint(
        "GET",
        "/openapi.json",
        "read",
        _openapi,
        summary="This document",
        responses={"200": json_answer("OpenAPI 3.1", {"type": "object"})},
    ),
)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of :data:`ENDPOINTS`, served at ``/openapi.json``."""
    return build_document(ENDPOINTS)
