"""API tokens with scopes: who may read, who may change jobs, who may run the place.

Scopes nest: ``read`` (look at anything), ``write`` (submit, cancel and retry
jobs; includes read), ``admin`` (pause and resume queues; includes write).
Tokens come from configuration (``[[tokens]]`` in servcore.toml) or the
environment::

    SERVCORE_TOKENS="admin:s3cret-admin-token-1,grafana=read:s3cret-grafana-token"
    SERVCORE_TOKENS="ci=write:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

An item's ``name=`` (optional) names the token in logs, the dashboard and
403 answers; without one it is ``SERVCORE_TOKENS[N]`` (its place, from 1).

A token may be given as its SHA-256 (``sha256:<hex>``) so that the clear text
never sits in a file. Presented tokens are hashed and compared with every
configured digest in constant time. With no token configured, the API is
open — and the service then binds only to loopback unless told otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from servcore.errors import ConfigError

SCOPES = ("read", "write", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_HEX = re.compile(r"^[0-9a-f]{64}$")
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A configured token: its name (for logs), scope and SHA-256 digest."""

    name: str
    scope: str
    digest: bytes

    @classmethod
    def make(
        cls, name: str, scope: str, *, token: str | None = None, sha256: str | None = None
    ) -> ApiToken:
        if scope not in _RANK:
            raise ConfigError(f"token {name!r}: scope must be one of {', '.join(SCOPES)}")
        if (token is None) == (sha256 is None):
            raise ConfigError(f"token {name!r}: give either the token or its sha256")
        if token is not None:
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"token {name!r}: at least {MIN_TOKEN_LENGTH} characters, "
                    "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            return cls(name, scope, digest_of(token))
        assert sha256 is not None
        if not _HEX.match(sha256.lower()):
            raise ConfigError(f"token {name!r}: sha256 must be 64 hexadecimal digits")
        return cls(name, scope, bytes.fromhex(sha256))


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def grants(scope: str, needed: str) -> bool:
    """Whether a token of ``scope`` may do what needs ``needed``."""
    return _RANK[scope] >= _RANK[needed]


def find_token(tokens: Iterable[ApiToken], presented: str) -> ApiToken | None:
    """The configured token ``presented`` is, or None; every digest is compared,
    each in constant time, so the time taken says nothing of which matched."""
    digest = digest_of(presented)
    found = None
    for token in tokens:
        if hmac.compare_digest(token.digest, digest):
            found = token
    return found


def tokens_from_env(text: str) -> tuple[ApiToken, ...]:
    """``SERVCORE_TOKENS``: comma-separated ``[name=]scope:token`` or
    ``[name=]scope:sha256:<hex>``."""
    tokens = []
    for index, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        named_scope, colon, secret = item.partition(":")
        if not colon:
            raise ConfigError(
                "SERVCORE_TOKENS takes [name=]scope:token items (scope read, write or admin), "
                f"item {index + 1} has no scope"
            )
        given_name, equals, scope = named_scope.rpartition("=")
        if equals and not given_name.strip():
            raise ConfigError(f"SERVCORE_TOKENS item {index + 1}: an empty name before '='")
        name = given_name.strip() if equals else f"SERVCORE_TOKENS[{index + 1}]"
        if secret.startswith("sha256:"):
            tokens.append(ApiToken.make(name, scope, sha256=secret[len("sha256:") :]))
        else:
            tokens.append(ApiToken.make(name, scope, token=secret))
    return tuple(tokens)
