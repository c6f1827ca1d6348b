"""The API's ASGI app: the guard, then the hottest routes answered directly, in
front of the Starlette app.

The endpoints marked ``fast`` in :mod:`servcore.http.routes` (``POST /jobs``
and ``GET /jobs/{id}``, and a pipeline's own) are answered here from the raw
ASGI messages; everything else (and the lifespan) goes to Starlette. The
request's route is found once, from the same routes Starlette serves, for
the guard and for this path. Measured on
this project's 2-core machine, a plain ASGI POST handler serves ~31k req/s
where the same handler behind Starlette's routing and middleware serves
~12.5k, and the submit path is where servcore's users put their load. Both
paths call the same functions in ``answers``, so they cannot drift apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

from servcore.http import answers, gate
from servcore.http.bodies import body_reader
from servcore.http.endpoints import Endpoint, EndpointRoute, FastAnswer
from servcore.http.validation import BadRequest
from servcore.service import Service
from servcore.store.base import StoreError

log = logging.getLogger("servcore.http")

_JSON_HEADERS = [(b"content-type", b"application/json")]


class ServcoreApp:
    """The whole API as one ASGI app; see the module docstring."""

    def __init__(
        self, app: Starlette, service: Service, guard: gate.AccessGuard | None = None
    ) -> None:
        self.app = app
        self._service = service
        self._guard = guard or gate.AccessGuard()
        self._index = gate.RouteIndex(app.routes)

    @property
    def routes(self) -> list[BaseRoute]:
        return self.app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self._service.telemetry
        if scope["type"] == "http" and (
            telemetry.listening("http.start") or telemetry.listening("http.stop")
        ):
            await self._measured(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self._index.find(scope["method"], _route_path(scope))
            denial = self._guard.deny(
                scope, found[1] if found is not None else None, self._service.config
            )
            if denial is not None:
                await gate.send_denial(send, denial)
                return
            if found is not None:
                route, access, params = found
                if isinstance(access, Endpoint) and access.fast is not None:
                    assert isinstance(route, EndpointRoute)  # only they serve endpoints
                    scope["route_template"] = route.path
                    fast = self._fast(access.fast, route, params, scope, receive)
                    await self._answer(send, fast)
                    return
        await self.app(scope, receive, send)

    async def _measured(self, scope: Scope, receive: Receive, send: Send) -> None:
        """:meth:`_dispatch`, telling ``http.start`` and ``http.stop``."""
        telemetry = self._service.telemetry
        method, path = scope["method"], scope["path"]
        telemetry.emit(
            "http.start", {}, {"method": method, "path": path, "headers": scope["headers"]}
        )
        status = 500  # unless a response starts: the app raised
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._dispatch(scope, receive, send_noting_status)
        finally:
            telemetry.emit(
                "http.stop",
                {"duration": time.perf_counter() - started},
                {"method": method, "path": path, "route": _route_of(scope), "status": status},
            )

    async def _fast(
        self,
        fast: FastAnswer,
        route: EndpointRoute,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
    ) -> answers.Answer:
        body = b""
        if scope["method"] == "POST":
            try:
                body = await _read_body(scope, receive, self._service.config.http.max_body_bytes)
            except BadRequest as problem:
                return answers.error(problem.message, problem.status)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
        request = answers.RawRequest(params, scope["headers"], body, query)
        return await fast(route.service, route.queue, request)

    async def _answer(self, send: Send, answering: Awaitable[answers.Answer]) -> None:
        try:
            status, body = await answering
        except StoreError as problem:
            status, body = answers.error(f"Store unavailable, try again: {problem}", 503)
        except Exception:
            log.exception("Unexpected error answering a request")
            status, body = answers.error("Internal server error", 500)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_of(scope: Scope) -> str:
    """The route's template (``/jobs/{id}``), never the raw path: few label values."""
    template = scope.get("route_template")
    if template is not None:
        return str(template)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else "unmatched"


def _route_path(scope: Scope) -> str:
    """The path below where the app is mounted (Starlette keeps the full path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(scope: Scope, receive: Callable[[], Awaitable[Message]], limit: int) -> bytes:
    reader = body_reader(scope["headers"], limit)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected before sending the body")
        reader.add(message.get("body", b""))
        if not message.get("more_body", False):
            return reader.result()
