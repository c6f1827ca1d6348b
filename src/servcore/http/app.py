"""The ASGI app: every route of the seed's API, mountable whole or in parts."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from servcore.http import handlers
from servcore.http.asgi import ServcoreApp
from servcore.http.dashboard import dashboard_routes
from servcore.http.gate import AccessGuard
from servcore.http.openapi import openapi_document
from servcore.http.sessions import Sessions
from servcore.service import Service
from servcore.store.base import StoreError

Endpoint = Callable[..., Awaitable[Response]]


def _bind(
    endpoint: Endpoint, service: Service, **extra: Any
) -> Callable[[Request], Awaitable[Response]]:
    bound = functools.partial(endpoint, service=service, **extra)
    functools.update_wrapper(bound, endpoint)
    return bound


def _by_method(
    **endpoints: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for a path served by several methods, so a 405 lists them all."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def job_routes(
    service: Service, prefix: str = "/jobs", queue: str | None = None
) -> list[BaseRoute]:
    """The four job routes under ``prefix``, for one queue or (``None``) all.

    ``job_routes(service, "/email_jobs", queue="email")`` gives the seed's
    per-pipeline routes: ``POST /email_jobs``, ``POST /email_jobs/schedule``,
    ``GET /email_jobs``, ``GET /email_jobs/{id}``, and ``POST /email_jobs/batch``.
    For a pipeline with a store of its own they reach that store.
    """
    if queue is not None:
        service = service.pipeline(queue)
    return [
        Route(
            prefix,
            _by_method(
                GET=_bind(handlers.list_jobs, service, queue=queue),
                POST=_bind(handlers.create_job, service, queue=queue),
            ),
            methods=["GET", "POST"],
        ),
        Route(
            f"{prefix}/schedule",
            _bind(handlers.schedule_job, service, queue=queue),
            methods=["POST"],
        ),
        Route(
            f"{prefix}/batch", _bind(handlers.create_jobs, service, queue=queue), methods=["POST"]
        ),
        Route(f"{prefix}/{{id}}", _bind(handlers.get_job, service, queue=queue), methods=["GET"]),
        Route(
            f"{prefix}/{{id}}/cancel",
            _bind(handlers.cancel_job, service, queue=queue),
            methods=["POST"],
        ),
        Route(
            f"{prefix}/{{id}}/retry",
            _bind(handlers.retry_job, service, queue=queue),
            methods=["POST"],
        ),
    ]


def service_routes(service: Service) -> list[BaseRoute]:
    """``/``, ``/health``, ``/stats``, ``/nodes``, ``/queues``, ``/cron``, ``/metrics``
    and ``/openapi.json``."""

    async def openapi(request: Request) -> Response:
        return handlers.json_response(openapi_document())

    return [
        Route("/", _bind(handlers.root, service), methods=["GET"]),
        Route("/health", _bind(handlers.health, service), methods=["GET"]),
        Route("/stats", _bind(handlers.stats, service), methods=["GET"]),
        Route("/stats/history", _bind(handlers.history, service), methods=["GET"]),
        Route("/nodes", _bind(handlers.nodes, service), methods=["GET"]),
        Route("/queues", _bind(handlers.list_queues, service), methods=["GET"]),
        Route("/queues/{name}/pause", _bind(handlers.pause_queue, service), methods=["POST"]),
        Route("/queues/{name}/resume", _bind(handlers.resume_queue, service), methods=["POST"]),
        Route("/cron", _bind(handlers.list_cron, service), methods=["GET"]),
        Route("/jobs/cancel", _bind(handlers.cancel_jobs, service), methods=["POST"]),
        Route("/jobs/retry", _bind(handlers.retry_jobs, service), methods=["POST"]),
        Route("/metrics", _bind(handlers.metrics, service), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = "Not found" if error.status_code == 404 else str(error.detail)
    headers = dict(error.headers) if error.headers else None
    return handlers.json_response({"error": message}, error.status_code, headers)


async def _store_error(request: Request, error: Exception) -> Response:
    return handlers.error_response(f"Store unavailable, try again: {error}", 503)


async def _server_error(request: Request, error: Exception) -> Response:
    return handlers.error_response("Internal server error", 500)


def create_app(service: Service, *, manage_service: bool = True) -> ServcoreApp:
    """The whole API for ``service``, with the routes of its pipelines that name some.

    With ``manage_service`` the app's lifespan starts the service (store and
    workers) and stops it gracefully; pass ``False`` when something else
    owns the service's life — the CLI, or your own app with
    ``lifespan=service.lifespan`` (Starlette runs no lifespan of a mounted app).
    """

    guard = AccessGuard(Sessions(service.config.session_secret))
    pipeline_routes = [
        route
        for name, pipeline in service.pipelines.items()
        if pipeline.routes is not None
        for route in job_routes(service, pipeline.routes, queue=name)
    ]
    starlette = Starlette(
        routes=[
            *service_routes(service),
            *job_routes(service),
            *pipeline_routes,
            *dashboard_routes(service, guard),
        ],
        exception_handlers={
            HTTPException: _http_error,
            StoreError: _store_error,
            Exception: _server_error,
        },
        lifespan=service.lifespan if manage_service else None,
    )
    return ServcoreApp(starlette, service, guard=guard)
