"""Dashboard sessions: a signed cookie after signing in with an API token.

The cookie holds a session id, which configured token it stands for (a
fingerprint of its digest, looked up on every request: a token taken out of
the configuration ends its sessions), a CSRF secret and an expiry, signed
with HMAC-SHA256 (``session_secret``, random per process unless set). Signing
out revokes the session id in that process; a restart with a new secret
signs everyone out. It is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` (browsers
keep Secure cookies for https and for loopback http).

Changing requests authenticated by the cookie must also carry the CSRF
secret in an ``X-CSRF-Token`` header; the dashboard's script reads it from a
second, readable cookie. A cross-site page can make the browser send the
first cookie (not with SameSite=Strict, but belt and braces) but can read
neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from servcore.auth import ApiToken

SESSION_COOKIE = "servcore_session"
CSRF_COOKIE = "servcore_csrf"
CSRF_HEADER = b"x-csrf-token"
SESSION_SECONDS = 12 * 3600


class _Payload(msgspec.Struct, frozen=True):
    session: str  # its id: signing out revokes it
    token: str  # which configured token: a fingerprint of its digest
    csrf: str
    expires: float


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    token: ApiToken
    csrf: str
    expires: float


class Sessions:
    def __init__(self, secret: str | None) -> None:
        self._key = (secret or secrets.token_urlsafe(32)).encode()
        self._revoked: dict[str, float] = {}  # session id → its expiry

    def issue(self, token: ApiToken, now: float | None = None) -> tuple[str, str]:
        """A new session for ``token``: (cookie value, CSRF secret)."""
        csrf = secrets.token_urlsafe(24)
        expires = (now or time.time()) + SESSION_SECONDS
        payload = _Payload(secrets.token_urlsafe(16), _fingerprint(token), csrf, expires)
        encoded = base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode().rstrip("=")
        return f"{encoded}.{self._sign(encoded)}", csrf

    def read(
        self, cookie: str, tokens: Iterable[ApiToken], now: float | None = None
    ) -> Session | None:
        """The session a cookie holds, or None if it is forged, damaged, old,
        signed out, or its token is no longer configured (revoked, or its
        scope changed: the session takes the token as it is now)."""
        encoded, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(encoded).encode()):
            return None
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            payload = msgspec.json.decode(body, type=_Payload)
        except (ValueError, msgspec.DecodeError):
            return None
        if payload.expires < (now or time.time()) or payload.session in self._revoked:
            return None
        token = next((t for t in tokens if _fingerprint(t) == payload.token), None)
        if token is None:
            return None
        return Session(payload.session, token, payload.csrf, payload.expires)

    def revoke(self, session: Session, now: float | None = None) -> None:
        """Sign a session out (in this process: sessions are not shared state)."""
        now = now or time.time()
        for gone in [sid for sid, until in self._revoked.items() if until < now]:
            del self._revoked[gone]
        self._revoked[session.id] = session.expires

    def _sign(self, encoded: str) -> str:
        digest = hmac.new(self._key, encoded.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class SignInLimiter:
    """At most ``attempts`` failed sign-ins per client per ``window`` seconds."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self._attempts = attempts
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(client)
        if not failures:
            return 0.0
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return 0.0
        if len(failures) < self._attempts:
            return 0.0
        return failures[0] + self._window - now

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._failures.setdefault(client, deque()).append(now)
        if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))


def _fingerprint(token: ApiToken) -> str:
    """Names the token in a cookie without giving away its digest."""
    return hashlib.sha256(b"servcore-session:" + token.digest).hexdigest()[:32]


def cookie_value(scope_headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for header, value in scope_headers:
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == name:
                    return found
    return None
