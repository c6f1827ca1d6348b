"""Routes of the dashboard: its pages, its assets, signing in and out.

The pages are static files (no build step): the browser runs ``app.js``,
which reads and changes everything through the same JSON API as any client,
with the session cookie and the CSRF header instead of a bearer token.
Every page goes out with security headers: a strict Content-Security-Policy
(no inline script or style), no framing, no sniffing, no referrer, no caching.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from servcore.auth import find_token
from servcore.http import handlers
from servcore.http.bodies import read_body
from servcore.http.gate import (
    AccessGuard,
    GuardedRoute,
    Needs,
    client_of,
    is_loopback,
    session_of,
)
from servcore.http.serialization import encode
from servcore.http.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Session
from servcore.http.validation import BadRequest
from servcore.service import Service

_SCRIPT = "text/javascript; charset=utf-8"
_ASSETS = {
    "app.js": _SCRIPT,
    "core.js": _SCRIPT,
    "queues.js": _SCRIPT,
    "jobs.js": _SCRIPT,
    "job.js": _SCRIPT,
    "forms.js": _SCRIPT,
    "app.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
_MAX_LOGIN_BODY = 4096
_ANYONE = Needs(None)


def _static(name: str) -> bytes:
    return resources.files("servcore.http.dashboard").joinpath("static", name).read_bytes()


def _page(name: str, status: int = 200, message: str = "", preload: bytes = b"") -> Response:
    body = _static(name)
    if message:
        # The only dynamic text a page has: escaped, and known to the server.
        body = body.replace(b"<!--message-->", _escape(message).encode())
    if preload:
        body = body.replace(b"<!--preload-->", preload)
    return Response(body, status, SECURITY_HEADERS, media_type="text/html; charset=utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def first_paint(service: Service, who: dict[str, Any]) -> bytes:
    """What the overview reads first, by API path, as one JSON object to put
    in the page: its script reads the answers there instead of asking, so the
    page is complete at its first paint (even in a screenshot taken at load).
    Any signed-in token may read these. ``<`` is escaped, so no text from the
    store can end the script element."""
    stats, queues, nodes, history = await asyncio.gather(
        handlers.stats_json(service),
        handlers.queues_json(service),
        handlers.nodes_json(service),
        handlers.history_json(service),
    )
    answers = {
        "/dashboard/whoami": who,
        "/stats": stats,
        "/queues": queues,
        "/nodes": nodes,
        "/stats/history": history,
    }
    return encode(answers).replace(b"<", b"\\u003c")


def dashboard_routes(service: Service, guard: AccessGuard) -> list[BaseRoute]:
    sessions = guard.sessions
    assert sessions is not None
    limiter = guard.limiter  # one count of failures for sign-ins and bearer tokens

    def guarded() -> bool:
        return bool(service.config.auth.tokens)

    def session(request: Request) -> Session | None:
        return session_of(request.scope, sessions, service.config)

    def to(request: Request, path: str) -> RedirectResponse:
        root = request.scope.get("root_path", "")  # mounted under a prefix
        return RedirectResponse(f"{root}{path}", 303, SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        if request.url.path.endswith("/"):
            return to(request, "/dashboard")  # the pages' relative links need it bare
        if guarded() and session(request) is None:
            return to(request, "/dashboard/login")
        return _page("index.html", preload=await first_paint(service, who(request)))

    async def login_page(request: Request) -> Response:
        if not guarded():
            return to(request, "/dashboard")
        return _page("login.html")

    async def login(request: Request) -> Response:
        if not guarded():
            return to(request, "/dashboard")
        try:
            body = await read_body(request, _MAX_LOGIN_BODY)
        except BadRequest as problem:
            return _page("login.html", problem.status, problem.message)
        # From here to the verdict nothing awaits: concurrent guesses are counted.
        client = client_of(request.scope)
        wait = limiter.retry_after(client)
        if wait > 0:
            page = _page("login.html", 429, f"Too many failed sign-ins: try again in {wait:.0f} s")
            page.headers["retry-after"] = str(int(wait) + 1)
            return page
        form = parse_qs(body.decode("utf-8", "replace"))
        presented = (form.get("token") or [""])[0].strip()
        token = find_token(service.config.auth.tokens, presented) if presented else None
        if token is None:
            limiter.failed(client)
            return _page("login.html", 401, "That token is not valid.")
        cookie, csrf = sessions.issue(token, time.time())
        response = to(request, "/dashboard")
        # Secure, except over plain http on loopback (where some clients would
        # not send it back). Elsewhere: behind TLS the browser sees https, and
        # without TLS a session cookie has no business travelling at all.
        secure = not (request.url.scheme == "http" and is_loopback(request.url.hostname))
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=SESSION_SECONDS,
            path="/",
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        response.set_cookie(
            CSRF_COOKIE, csrf, max_age=SESSION_SECONDS, path="/", secure=secure, samesite="strict"
        )
        return response

    async def logout(request: Request) -> Response:
        # A changing request: the guard has checked the session and its CSRF header.
        current = session(request)
        if current is not None:
            sessions.revoke(current)
        response = JSONResponse({"message": "Signed out"}, headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    async def whoami(request: Request) -> Response:
        return JSONResponse(who(request), headers=SECURITY_HEADERS)

    def who(request: Request) -> dict[str, Any]:
        current = session(request)
        if current is None:
            body = {
                "signed_in": False,
                "guarded": guarded(),
                # No tokens configured: the API is open, so the dashboard may do anything.
                "scope": None if guarded() else "admin",
            }
        else:
            body = {
                "signed_in": True,
                "guarded": True,
                "name": current.token.name,
                "scope": current.token.scope,
            }
        return body

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        kind = _ASSETS.get(name)
        if kind is None:
            return JSONResponse({"error": "Not found"}, 404)
        headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
        return Response(_static(name), headers=headers, media_type=kind)

    # The pages sign in by themselves (their API calls are guarded as any
    # client's); any session may end itself (with its CSRF header).
    return [
        GuardedRoute("/dashboard", index, {"GET": _ANYONE}),
        GuardedRoute("/dashboard/", index, {"GET": _ANYONE}),
        GuardedRoute("/dashboard/login", login_page, {"GET": _ANYONE}),
        GuardedRoute("/dashboard/login", login, {"POST": _ANYONE}),
        GuardedRoute("/dashboard/logout", logout, {"POST": Needs("read")}),
        GuardedRoute("/dashboard/whoami", whoami, {"GET": _ANYONE}),
        GuardedRoute("/dashboard/static/{name}", asset, {"GET": _ANYONE}),
    ]
