"""The guard: every request shows a token of the scope its route needs.

Only when tokens are configured (see :mod:`servcore.auth`). Each route says
what it needs: the API's routes are built from their endpoints
(:mod:`servcore.http.routes`, where each has its scope), the dashboard's
say it where they are made. A :class:`RouteIndex` finds a request's route
before Starlette routes it; a path no route serves needs ``read`` for
``GET``/``HEAD``/``OPTIONS`` and ``write`` for anything else, so a 404
tells nothing to someone without a token.

A token comes as ``Authorization: Bearer <token>``, or from the dashboard's
session cookie (see :mod:`servcore.http.sessions`), which also needs the CSRF
header on anything that changes something.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from servcore.auth import ApiToken, find_token, grants
from servcore.config import ServiceConfig
from servcore.http.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    Sessions,
    SignInLimiter,
    cookie_value,
)
from servcore.service import Service

_READING = frozenset({"GET", "HEAD", "OPTIONS"})
_encode = msgspec.json.encode


class Access(Protocol):
    """What calling a route with one method needs."""

    @property
    def scope(self) -> str | None:
        """``read``, ``write`` or ``admin``; None: anyone may."""

    @property
    def public_if(self) -> Callable[[ServiceConfig], bool] | None:
        """A setting that opens it to anyone (``public_health``)."""


@dataclass(frozen=True, slots=True)
class Needs:
    """An :class:`Access` for routes that are not API endpoints (the dashboard's)."""

    scope: str | None
    public_if: Callable[[ServiceConfig], bool] | None = None


class GuardedRoute(Route):
    """A Starlette route that says what each of its methods needs."""

    def __init__(self, path: str, endpoint: Callable[..., Any], access: Mapping[str, Access]):
        super().__init__(path, endpoint, methods=list(access))
        self.access = dict(access)
        if "GET" in access:
            self.access.setdefault("HEAD", access["GET"])


Found = tuple[GuardedRoute, Access, dict[str, str]]


class RouteIndex:
    """The guarded route a request is for, found the way Starlette would (the
    first route in order that serves its path and method), but before it."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._by_segment: dict[str, list[GuardedRoute]] = {}
        for route in routes:
            if isinstance(route, GuardedRoute):
                self._by_segment.setdefault(_first_segment(route.path), []).append(route)

    def find(self, method: str, path: str) -> Found | None:
        """The route, what it needs for ``method``, and its path parameters."""
        for route in self._by_segment.get(_first_segment(path), ()):
            access = route.access.get(method)
            if access is None:
                continue
            if not route.param_convertors:
                if route.path == path:
                    return route, access, {}
            elif (match := route.path_regex.match(path)) is not None:
                return route, access, match.groupdict()
        return None


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else path


@dataclass(frozen=True, slots=True)
class Denial:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def required_scope(method: str, access: Access | None, config: ServiceConfig) -> str | None:
    """The scope a request needs (``access``: its route's, None if no route serves
    it); None for the public ones."""
    if access is None:
        return "read" if method in _READING else "write"
    if access.public_if is not None and access.public_if(config):
        return None
    return access.scope


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else ""
    return None


class AccessGuard:
    """What every request passes: the site and host checks, then the token's."""

    def __init__(self, sessions: Sessions | None = None) -> None:
        self.sessions = sessions
        self.limiter = SignInLimiter()  # failed tokens, by client address

    def deny(self, scope: Scope, access: Access | None, config: ServiceConfig) -> Denial | None:
        """Why the request may not go on (``access``: what its route needs, None
        if no route serves it), or None if it may."""
        denial = cross_site(scope) or foreign_host(scope, config)
        if denial is None and config.auth.tokens:
            denial = check(scope, access, config, self.sessions, self.limiter)
        return denial


def check(
    scope: Scope,
    access: Access | None,
    config: ServiceConfig,
    sessions: Sessions | None = None,
    limiter: SignInLimiter | None = None,
) -> Denial | None:
    """Why the request may not go on, or None if it may."""
    method = scope["method"]
    needed = required_scope(method, access, config)
    if needed is None:
        return None
    presented = bearer(scope)
    token: ApiToken | None = None
    if presented:
        client = client_of(scope)
        if limiter is not None and (wait := limiter.retry_after(client)) > 0:
            return _denial(429, f"Too many invalid tokens: try again in {wait:.0f} s")
        token = find_token(config.auth.tokens, presented)
        if token is None:
            if limiter is not None:
                limiter.failed(client)
            return _denial(401, "Invalid token")
    else:
        session = session_of(scope, sessions, config) if presented is None else None
        if session is None:
            return _denial(
                401,
                "Authentication required: send Authorization: Bearer <token>"
                if presented is None
                else "Authorization header must be: Bearer <token>",
            )
        if method not in _READING and not _csrf_matches(scope, session.csrf):
            return _denial(403, "Forbidden: missing or wrong X-CSRF-Token for this session")
        token = session.token
    if not grants(token.scope, needed):
        return _denial(
            403, f"Forbidden: this needs a {needed} token; {token.name!r} is a {token.scope} token"
        )
    scope["servcore.token"] = token
    return None


def cross_site(scope: Scope) -> Denial | None:
    """Refuse a changing request a browser sent from another site.

    With no tokens configured, any web page could otherwise make the browser
    of someone on this machine POST to the API (a form needs no script and no
    CORS). Browsers say where a request comes from (``Sec-Fetch-Site``,
    ``Origin``); clients that are not browsers send neither and pass.
    """
    if scope["method"] in _READING:
        return None
    site = origin = host = None
    for name, value in scope["headers"]:
        if name == b"sec-fetch-site":
            site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    if site is not None:  # every current browser says it: the surest sign
        # (a changing request with no site at all is a navigation or a non-browser)
        if site in (b"same-origin", b"none"):
            return None
        return _denial(403, "Forbidden: a changing request from another site")
    # An older browser: its Origin. ("null" is what a no-referrer page's own
    # form sends, so it cannot tell; let it pass.)
    if origin not in (None, b"null") and origin.split(b"://", 1)[-1] != host:
        return _denial(403, "Forbidden: a changing request from another origin")
    return None


def foreign_host(scope: Scope, config: ServiceConfig) -> Denial | None:
    """With no tokens, answer only requests addressed to loopback by name: a
    page whose DNS name was pointed at 127.0.0.1 (DNS rebinding) is refused."""
    if config.auth.tokens or config.auth.allow_open:
        return None
    for name, value in scope["headers"]:
        if name == b"host":
            text = value.decode("latin-1")
            host = text if text.endswith("]") else text.rsplit(":", 1)[0]  # no port
            if is_loopback(host):
                return None
            return _denial(403, "Forbidden: this open service answers only to its loopback address")
    return None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, IPv6 bracketed or not) is this machine."""
    if host is None:
        return False
    bare = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return bare == "localhost"


def session_of(scope: Scope, sessions: Sessions | None, config: ServiceConfig) -> Session | None:
    """The request's dashboard session, if it has one that still holds: signed,
    not expired, not signed out, and its token still configured as it was."""
    if sessions is None:
        return None
    cookie = cookie_value(scope["headers"], SESSION_COOKIE)
    return sessions.read(cookie, config.auth.tokens) if cookie else None


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _csrf_matches(scope: Scope, expected: str) -> bool:
    for name, value in scope["headers"]:
        if name == CSRF_HEADER:
            return hmac.compare_digest(value, expected.encode())
    return False


def _denial(status: int, message: str) -> Denial:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="servcore"'))
    return Denial(status, _encode({"error": message}), headers)


async def send_denial(send: Send, denial: Denial) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": denial.status,
            "headers": [*denial.headers, (b"content-length", b"%d" % len(denial.body))],
        }
    )
    await send({"type": "http.response.body", "body": denial.body})


def gated(app: ASGIApp, service: Service) -> ASGIApp:
    """``app`` behind the guard (for apps other than the API, e.g. the metrics port,
    or your own Starlette app with :func:`~servcore.http.app.job_routes`: its
    routes say what they need)."""

    guard = AccessGuard()
    index = RouteIndex(getattr(app, "routes", ()))

    async def gate(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = index.find(scope["method"], scope["path"])
            access = found[1] if found is not None else None
            denial = guard.deny(scope, access, service.config)
            if denial is not None:
                await send_denial(send, denial)
                return
        await app(scope, receive, send)

    return gate
