"""What an endpoint is, and the Starlette route that serves it.

The endpoints themselves are in :mod:`servcore.http.routes`, each once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from servcore.config import ServiceConfig
from servcore.http.answers import Answer, RawRequest
from servcore.http.gate import GuardedRoute
from servcore.service import Service

Schema = dict[str, Any]
Handler = Callable[..., Awaitable[Response]]
"""``(request, service)``; a ``per_queue`` one also takes ``queue`` (None: every queue)."""
FastAnswer = Callable[[Service, str | None, RawRequest], Awaitable[Answer]]
"""``(service, queue, request)``: the answer, without Starlette."""

JOBS = "/jobs"
"""Where the ``per_queue`` endpoints live; a pipeline serves them again under its prefix."""


@dataclass(frozen=True, eq=False, slots=True)
class Endpoint:
    """One method on one path: who may call it, what it takes and answers, who serves it.

    ``responses``, ``parameters`` and ``body`` (the JSON body's schema; None:
    it takes none) are its OpenAPI operation. ``public_if`` is a setting that
    opens it to anyone; ``per_queue`` ones are served again under each
    pipeline's prefix for its queue; ``fast`` ones are answered by the ASGI
    path (:mod:`servcore.http.asgi`) before Starlette.
    """

    method: Literal["GET", "POST"]
    path: str
    scope: Literal["read", "write", "admin"] | None  # None: anyone
    handler: Handler
    responses: Mapping[str, Schema]
    summary: str = ""
    parameters: tuple[Schema, ...] = ()
    body: Schema | None = None
    public_if: Callable[[ServiceConfig], bool] | None = None
    per_queue: bool = False
    fast: FastAnswer | None = None

    def __post_init__(self) -> None:
        if self.per_queue and not self.path.startswith(JOBS):
            raise ValueError(f"{self.path}: a per_queue endpoint lives under {JOBS}")

    def served_at(self, prefix: str) -> str:
        """Its path when its ``per_queue`` family is served under ``prefix``."""
        return prefix + self.path[len(JOBS) :]


class EndpointRoute(GuardedRoute):
    """The route of one path's endpoints (one per method), for ``service`` and
    one ``queue`` (None: every queue)."""

    def __init__(
        self,
        path: str,
        endpoints: Iterable[Endpoint],
        service: Service,
        queue: str | None = None,
    ) -> None:
        by_method: dict[str, Endpoint] = {endpoint.method: endpoint for endpoint in endpoints}
        bound = {method: _bind(endpoint, service, queue) for method, endpoint in by_method.items()}

        async def dispatch(request: Request) -> Response:
            # One Starlette route for the path, so a 405 lists all its methods.
            return await bound["GET" if request.method == "HEAD" else request.method](request)

        super().__init__(path, dispatch, by_method)
        self.endpoints = by_method
        self.service = service
        self.queue = queue


def endpoint_routes(
    endpoints: Iterable[Endpoint],
    service: Service,
    prefix: str | None = None,
    queue: str | None = None,
) -> list[EndpointRoute]:
    """A route per path of ``endpoints``, in their order; with ``prefix``, the
    ``per_queue`` ones served under it instead of ``/jobs``."""
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        path = endpoint.path if prefix is None else endpoint.served_at(prefix)
        by_path.setdefault(path, []).append(endpoint)
    return [EndpointRoute(path, group, service, queue) for path, group in by_path.items()]


def _bind(
    endpoint: Endpoint, service: Service, queue: str | None
) -> Callable[[Request], Awaitable[Response]]:
    extra = {"queue": queue} if endpoint.per_queue else {}
    bound = functools.partial(endpoint.handler, service=service, **extra)
    functools.update_wrapper(bound, endpoint.handler)
    return bound
