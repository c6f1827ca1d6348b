"""Routes of the dashboard: its pages, its assets, signing in and out.

The pages are static files (no build step): the browser runs ``app.js``,
which reads and changes everything through the same JSON API as any client,
with the session cookie and the CSRF header instead of a bearer token.
Every page goes out with security headers: a strict Content-Security-Policy
(no inline script or style), no framing, no sniffing, no referrer, no caching.
"""

from __future__ import annotations

import time
from importlib import resources
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from servcore.auth import find_token
from servcore.http.gate import session_of
from servcore.http.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Sessions,
    SignInLimiter,
)
from servcore.service import Service

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
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


def _static(name: str) -> bytes:
    return resources.files("servcore.dashboard").joinpath("static", name).read_bytes()


def _page(name: str, status: int = 200, message: str = "") -> Response:
    body = _static(name)
    if message:
        # The only dynamic text a page has: escaped, and known to the server.
        body = body.replace(b"<!--message-->", _escape(message).encode())
    return Response(body, status, SECURITY_HEADERS, media_type="text/html; charset=utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dashboard_routes(service: Service, sessions: Sessions) -> list[BaseRoute]:
    limiter = SignInLimiter()

    def guarded() -> bool:
        return bool(service.config.tokens)

    async def index(request: Request) -> Response:
        if guarded() and session_of(request.scope, sessions) is None:
            return RedirectResponse("/dashboard/login", 303, SECURITY_HEADERS)
        return _page("index.html")

    async def login_page(request: Request) -> Response:
        if not guarded():
            return RedirectResponse("/dashboard", 303, SECURITY_HEADERS)
        return _page("login.html")

    async def login(request: Request) -> Response:
        if not guarded():
            return RedirectResponse("/dashboard", 303, SECURITY_HEADERS)
        client = request.client.host if request.client else "unknown"
        wait = limiter.retry_after(client)
        if wait > 0:
            page = _page("login.html", 429, f"Too many failed sign-ins: try again in {wait:.0f} s")
            page.headers["retry-after"] = str(int(wait) + 1)
            return page
        body = await request.body()
        form = parse_qs(body[:_MAX_LOGIN_BODY].decode("utf-8", "replace"))
        presented = (form.get("token") or [""])[0].strip()
        token = find_token(service.config.tokens, presented) if presented else None
        if token is None:
            limiter.failed(client)
            return _page("login.html", 401, "That token is not valid.")
        cookie, csrf = sessions.issue(token, time.time())
        response = RedirectResponse("/dashboard", 303, SECURITY_HEADERS)
        secure = request.url.scheme == "https" or _loopback(request.url.hostname)
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
        # A changing request: the gate has checked the session and its CSRF header.
        response = JSONResponse({"message": "Signed out"}, headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    async def whoami(request: Request) -> Response:
        session = session_of(request.scope, sessions)
        if session is None:
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
                "name": session.token.name,
                "scope": session.token.scope,
            }
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        kind = _ASSETS.get(name)
        if kind is None:
            return JSONResponse({"error": "Not found"}, 404)
        headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
        return Response(_static(name), headers=headers, media_type=kind)

    return [
        Route("/dashboard", index, methods=["GET"]),
        Route("/dashboard/", index, methods=["GET"]),
        Route("/dashboard/login", login_page, methods=["GET"]),
        Route("/dashboard/login", login, methods=["POST"]),
        Route("/dashboard/logout", logout, methods=["POST"]),
        Route("/dashboard/whoami", whoami, methods=["GET"]),
        Route("/dashboard/static/{name}", asset, methods=["GET"]),
    ]


def _loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "[::1]")
