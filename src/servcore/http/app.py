"""The ASGI app: every route of the API, mountable whole or in parts.

The routes are built from the endpoints in :mod:`servcore.http.routes`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from servcore.http import handlers
from servcore.http.asgi import ServcoreApp
from servcore.http.dashboard import dashboard_routes
from servcore.http.endpoints import JOBS, endpoint_routes
from servcore.http.gate import AccessGuard
from servcore.http.routes import ENDPOINTS
from servcore.http.sessions import Sessions
from servcore.service import Service
from servcore.store.base import StoreError


def job_routes(service: Service, prefix: str = JOBS, queue: str | None = None) -> list[BaseRoute]:
    """The job routes (the endpoints marked ``per_queue``) under ``prefix``, for
    one queue or (``None``) all.

    ``job_routes(service, "/email_jobs", queue="email")`` gives the seed's
    per-pipeline routes: ``POST /email_jobs``, ``POST /email_jobs/schedule``,
    ``GET /email_jobs``, ``GET /email_jobs/{id}``, ``POST /email_jobs/batch``,
    and ``POST /email_jobs/{id}/cancel`` and ``/retry``. For a pipeline with a
    store of its own they reach that store. Each route says the scope it needs:
    put the app behind :func:`servcore.http.gate.gated` to check it.
    """
    if queue is not None:
        service = service.pipeline(queue)
    per_queue = [endpoint for endpoint in ENDPOINTS if endpoint.per_queue]
    return list(endpoint_routes(per_queue, service, prefix, queue))


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

    guard = AccessGuard(Sessions(service.config.auth.session_secret))
    pipeline_routes = [
        route
        for name, pipeline in service.pipelines.items()
        if pipeline.routes is not None
        for route in job_routes(service, pipeline.routes, queue=name)
    ]
    starlette = Starlette(
        routes=[
            *endpoint_routes(ENDPOINTS, service),
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
