"""Service settings: frozen, typed, validated once; read from the environment at the edge.

One name per setting everywhere (see DESIGN.md): ``SERVCORE_STORE`` /
``--store``, ``PORT`` or ``SERVCORE_PORT`` / ``--port``, ``SERVCORE_HOST`` /
``--host``, ``SERVCORE_NODE`` / ``--node``, ``SERVCORE_CONCURRENCY`` /
``--concurrency``, ``SERVCORE_QUEUE_CONCURRENCY`` (``email=8,media=2``),
``SERVCORE_PROCESSES`` (worker processes for
``executor="process"`` tasks), ``SERVCORE_SHUTDOWN_GRACE`` / ``--shutdown-grace``,
``SERVCORE_LEASE`` / ``--lease``, ``SERVCORE_QUEUES`` / ``--queues``.
Flags override the environment, which overrides defaults.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from servcore.auth import ApiToken, tokens_from_env
from servcore.errors import ConfigError
from servcore.jobs import DEFAULT_LEASE
from servcore.retry import DEFAULT_BACKOFF, Backoff

DEFAULT_STORE = "sqlite:///servcore.db"
DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_QUEUES = ("default",)


# Settings in seconds; each must be a finite number.
_TIMES = (
    "lease",
    "rescue_interval",
    "poll_interval",
    "shutdown_grace",
    "retention",
    "prune_interval",
    "expire_interval",
    "sample_interval",
    "unique_period",
)


def default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def default_concurrency() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything a :class:`~servcore.service.Service` needs to know.

    Times are seconds. ``lease`` is how long a claim holds without renewal;
    running jobs renew theirs every ``lease / 3``. ``poll_interval`` caps how
    long an idle queue waits before looking at the store on its own (it is
    woken at once by local submissions and at each job's ``run_at``).
    """

    store: str = DEFAULT_STORE
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    node: str = field(default_factory=default_node)
    queues: tuple[str, ...] = DEFAULT_QUEUES
    concurrency: int = field(default_factory=default_concurrency)
    # Per queue, overriding ``concurrency`` and a pipeline's own.
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    processes: int = field(default_factory=default_concurrency)
    lease: float = DEFAULT_LEASE
    max_rescues: int = 3
    rescue_interval: float = 0.5
    poll_interval: float = 1.0
    shutdown_grace: float = 15.0
    retention: float = 7 * 24 * 3600.0
    prune_interval: float = 3600.0
    expire_interval: float = 1.0
    # How often each worker node samples queue depths (queue.depth, metrics gauges).
    sample_interval: float = 5.0
    backoff: Backoff = DEFAULT_BACKOFF
    max_body_bytes: int = 1024 * 1024
    # Prometheus metrics at GET /metrics, and on a port of their own if set
    # (the seed's 9568; the only HTTP a `servcore worker` serves).
    metrics: bool = True
    metrics_port: int | None = None
    # OpenTelemetry spans (needs the `otel` extra); see servcore.tracing.
    tracing: bool = False
    # API tokens (servcore.auth). None configured: the API is open, and serve
    # binds only to loopback unless allow_open says otherwise.
    tokens: tuple[ApiToken, ...] = ()
    allow_open: bool = False
    public_health: bool = True
    public_metrics: bool = False
    # Signs dashboard session cookies; random per process unless set (set it
    # when several processes serve the dashboard behind one address).
    session_secret: str | None = None
    unique_period: float = 3600.0

    def __post_init__(self) -> None:
        for name in _TIMES:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ConfigError(f"{name} must be a finite number of seconds, not {value!r}")
        checks = [
            (1 <= self.port <= 65535, "port must be between 1 and 65535"),
            (
                self.metrics_port is None or 1 <= self.metrics_port <= 65535,
                "metrics_port must be between 1 and 65535",
            ),
            (bool(self.node), "node name must not be empty"),
            (bool(self.queues) and all(self.queues), "queues must be non-empty names"),
            (1 <= self.concurrency <= 10_000, "concurrency must be between 1 and 10000"),
            (1 <= self.processes <= 1_000, "processes must be between 1 and 1000"),
            (
                all(1 <= n <= 10_000 for n in self.queue_concurrency.values()),
                "a queue's concurrency must be between 1 and 10000",
            ),
            (self.lease > 0, "lease must be > 0 seconds"),
            (self.max_rescues >= 0, "max_rescues must be >= 0"),
            (self.rescue_interval > 0, "rescue_interval must be > 0 seconds"),
            (self.poll_interval > 0, "poll_interval must be > 0 seconds"),
            (self.shutdown_grace >= 0, "shutdown_grace must be >= 0 seconds"),
            (self.retention > 0, "retention must be > 0 seconds"),
            (self.prune_interval > 0, "prune_interval must be > 0 seconds"),
            (self.expire_interval > 0, "expire_interval must be > 0 seconds"),
            (self.sample_interval > 0, "sample_interval must be > 0 seconds"),
            (self.max_body_bytes >= 1024, "max_body_bytes must be >= 1024"),
            (self.unique_period > 0, "unique_period must be > 0 seconds"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def with_overrides(self, **overrides: Any) -> ServiceConfig:
        """A copy with the given settings changed; ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceConfig:
        """Defaults, then the environment, then ``overrides`` (the CLI's flags)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls().with_overrides(**{**env_overrides(env), **given})


def env_overrides(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment gives, by setting name."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    port = env.get("PORT") or env.get("SERVCORE_PORT")
    if port:
        values["port"] = _integer("PORT", port)
    for variable, (setting, parse) in _ENVIRONMENT.items():
        text = env.get(variable)
        if text:
            values[setting] = parse(variable, text)
    return values


def _text(name: str, text: str) -> str:
    return text


def _tokens(name: str, text: str) -> Any:
    return tokens_from_env(text)


def _queues(name: str, text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ConfigError(f"{name} must name one or more queues, e.g. video,pdf")
    return names


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None


def _queue_concurrency(name: str, text: str) -> dict[str, int]:
    """``"email=8,media=2"`` → ``{"email": 8, "media": 2}``."""
    values = {}
    for item in text.split(","):
        name, equals, number = item.strip().partition("=")
        if not item.strip():
            continue
        if not equals or not name.strip():
            raise ConfigError(
                f"SERVCORE_QUEUE_CONCURRENCY takes queue=number pairs, e.g. email=8,media=2; "
                f"got {item.strip()!r}"
            )
        values[name.strip()] = _integer(f"SERVCORE_QUEUE_CONCURRENCY ({name.strip()})", number)
    return values


def _switch(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {text!r}")


# Environment variable → (setting, how its text is read).
_ENVIRONMENT: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "SERVCORE_STORE": ("store", _text),
    "SERVCORE_HOST": ("host", _text),
    "SERVCORE_NODE": ("node", _text),
    "SERVCORE_CONCURRENCY": ("concurrency", _integer),
    "SERVCORE_QUEUE_CONCURRENCY": ("queue_concurrency", _queue_concurrency),
    "SERVCORE_PROCESSES": ("processes", _integer),
    "SERVCORE_QUEUES": ("queues", _queues),
    "SERVCORE_LEASE": ("lease", _number),
    "SERVCORE_SHUTDOWN_GRACE": ("shutdown_grace", _number),
    "SERVCORE_METRICS": ("metrics", _switch),
    "SERVCORE_METRICS_PORT": ("metrics_port", _integer),
    "SERVCORE_TRACING": ("tracing", _switch),
    "SERVCORE_TOKENS": ("tokens", _tokens),
    "SERVCORE_ALLOW_OPEN": ("allow_open", _switch),
    "SERVCORE_PUBLIC_HEALTH": ("public_health", _switch),
    "SERVCORE_PUBLIC_METRICS": ("public_metrics", _switch),
    "SERVCORE_SESSION_SECRET": ("session_secret", _text),
}
