"""Service settings: frozen, typed, validated once, nested by the part that reads them.

Every setting is declared once, as a field of its part's settings class with
a :func:`setting` spec: its default, the TOML type a configuration file gives
it, the environment variable(s) that set it and the rule it must meet.
:data:`SETTINGS` collects those specs into the one table that the
environment reader, the configuration file (:mod:`servcore.config_file`),
validation and ``configure()`` all use. A setting keeps one flat name
everywhere (``SERVCORE_LEASE``, ``lease = 30`` in ``servcore.toml``,
``ServiceConfig(lease=30)``, ``service.configure(lease=30)``); in code each
part reads its own group: ``config.http.port``, ``config.runtime.lease``.

Later sources win: defaults, then the file, then the environment, then
flags or arguments.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from servcore.auth import ApiToken, tokens_from_env
from servcore.errors import ConfigError
from servcore.jobs import DEFAULT_LEASE
from servcore.retry import DEFAULT_BACKOFF, Backoff

DEFAULT_STORE = "sqlite:///servcore.db"
DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_QUEUES = ("default",)
# A result is stored in the job's row and read back with it (GET /jobs/{id},
# listings): 1 MiB, as Celery's and Oban's advice goes, keeps large outputs
# in object storage, referred to by the result, not in the queue's table.
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
MAX_RESULT_BYTES_LIMIT = 256 * 1024 * 1024


def default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# Jobs at once per queue and node. Handlers are mostly ``async def`` and wait
# on the network, so the CPU count (2 here) left a worker process idle between
# claims; 10 is Oban's default queue limit and arq's max_jobs. Plain ``def``
# handlers share a thread pool capped by ``threads``, and CPU-bound ones belong
# in ``executor="process"`` tasks, capped by ``processes``.
DEFAULT_CONCURRENCY = 10


def default_processes() -> int:
    return os.cpu_count() or 1


def default_threads() -> int:
    """As Python's ThreadPoolExecutor: enough to overlap blocking I/O, not unbounded."""
    return min(32, (os.cpu_count() or 1) + 4)


# --- How a setting's text in the environment is read -------------------------


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


def _queue_concurrency(variable: str, text: str) -> dict[str, int]:
    """``"email=8,media=2"`` → ``{"email": 8, "media": 2}``."""
    values = {}
    for item in text.split(","):
        name, equals, number = item.strip().partition("=")
        if not item.strip():
            continue
        if not equals or not name.strip():
            raise ConfigError(
                f"{variable} takes queue=number pairs, e.g. email=8,media=2; got {item.strip()!r}"
            )
        values[name.strip()] = _integer(f"{variable} ({name.strip()})", number)
    return values


def _switch(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {text!r}")


# --- The spec of one setting --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """What the table knows of one setting besides its name, type and default."""

    part: str
    toml: str  # the TOML type a configuration file gives it ("number" takes integers)
    env: tuple[str, ...] = ()  # variables that set it, the first one present wins
    parse: Callable[[str, str], Any] = _text
    valid: Callable[[Any], bool] | None = None
    rule: str = ""  # the error when ``valid`` says no


def setting(
    default: Any = dataclasses.MISSING,
    *,
    toml: str,
    env: str | tuple[str, ...] = (),
    parse: Callable[[str, str], Any] = _text,
    valid: Callable[[Any], bool] | None = None,
    rule: str = "",
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A settings field with its spec (the part is filled in by :func:`_collect`)."""
    spec = SettingSpec("", toml, (env,) if isinstance(env, str) else env, parse, valid, rule)
    if factory is not None:
        return field(default_factory=factory, metadata={"setting": spec})
    return field(default=default, metadata={"setting": spec})


def seconds(default: float, *, env: str = "", at_least_zero: bool = False) -> Any:
    """A time in seconds: finite, and > 0 (or >= 0)."""
    return setting(
        default,
        toml="number",
        env=(env,) if env else (),
        parse=_number,
        valid=(lambda v: v >= 0) if at_least_zero else (lambda v: v > 0),
        rule="must be >= 0 seconds" if at_least_zero else "must be > 0 seconds",
    )


def _check(settings: Any) -> None:
    for item in dataclasses.fields(settings):
        spec: SettingSpec = item.metadata["setting"]
        value = getattr(settings, item.name)
        if spec.toml == "number" and not (isinstance(value, int | float) and math.isfinite(value)):
            raise ConfigError(f"{item.name} must be a finite number of seconds, not {value!r}")
        if spec.valid is not None and not spec.valid(value):
            rule = spec.rule
            raise ConfigError(f"{item.name} {rule}" if rule.startswith("must") else rule)


# --- The parts ----------------------------------------------------------------


class _Part:
    __slots__ = ()

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, slots=True)
class HttpSettings(_Part):
    """Read by the HTTP server and ``process_main``."""

    host: str = setting(DEFAULT_HOST, toml="string", env="SERVCORE_HOST")
    port: int = setting(
        DEFAULT_PORT,
        toml="integer",
        env=("PORT", "SERVCORE_PORT"),
        parse=_integer,
        valid=lambda v: 1 <= v <= 65535,
        rule="must be between 1 and 65535",
    )
    max_body_bytes: int = setting(
        1024 * 1024,
        toml="integer",
        parse=_integer,
        valid=lambda v: v >= 1024,
        rule="must be >= 1024",
    )
    # A connection's deadlines (see http/connections.py): headers complete
    # within ``header_timeout``, the body within ``body_timeout`` after them,
    # at most ``keepalive_timeout`` idle between requests.
    header_timeout: float = seconds(10.0, env="SERVCORE_HEADER_TIMEOUT")
    body_timeout: float = seconds(30.0, env="SERVCORE_BODY_TIMEOUT")
    keepalive_timeout: float = seconds(5.0, env="SERVCORE_KEEPALIVE_TIMEOUT")
    # Open connections at most (lowered to fit the file-descriptor limit).
    max_connections: int = setting(
        1000,
        toml="integer",
        env="SERVCORE_MAX_CONNECTIONS",
        parse=_integer,
        valid=lambda v: v >= 1,
        rule="must be >= 1",
    )
    max_header_bytes: int = setting(
        16 * 1024,
        toml="integer",
        env="SERVCORE_MAX_HEADER_BYTES",
        parse=_integer,
        valid=lambda v: v >= 1024,
        rule="must be >= 1024",
    )


@dataclass(frozen=True, slots=True)
class AuthSettings(_Part):
    """Read by the access guard (``http/gate.py``) and the dashboard's sign-in.

    No tokens: the API is open, and serve binds only to loopback unless
    ``allow_open`` says otherwise. ``session_secret`` signs dashboard session
    cookies; random per process unless set (set it when several processes
    serve the dashboard behind one address)."""

    tokens: tuple[ApiToken, ...] = setting((), toml="tokens", env="SERVCORE_TOKENS", parse=_tokens)
    allow_open: bool = setting(False, toml="boolean", env="SERVCORE_ALLOW_OPEN", parse=_switch)
    public_health: bool = setting(True, toml="boolean", env="SERVCORE_PUBLIC_HEALTH", parse=_switch)
    public_metrics: bool = setting(
        False, toml="boolean", env="SERVCORE_PUBLIC_METRICS", parse=_switch
    )
    session_secret: str | None = setting(None, toml="string", env="SERVCORE_SESSION_SECRET")


@dataclass(frozen=True, slots=True)
class RuntimeSettings(_Part):
    """Read by the worker node and its queue runtimes.

    ``lease`` is how long a claim holds without renewal; running jobs renew
    theirs every ``lease / 3``. ``poll_interval`` caps how long an idle queue
    waits before looking at the store on its own (it is woken at once by
    submissions, from this process or, through the store's notifier, from
    others, and at each job's ``run_at``)."""

    queues: tuple[str, ...] = setting(
        DEFAULT_QUEUES,
        toml="list of strings",
        env="SERVCORE_QUEUES",
        parse=_queues,
        valid=lambda v: bool(v) and all(v),
        rule="queues must be non-empty names",
    )
    concurrency: int = setting(
        DEFAULT_CONCURRENCY,
        toml="integer",
        env="SERVCORE_CONCURRENCY",
        parse=_integer,
        valid=lambda v: 1 <= v <= 10_000,
        rule="must be between 1 and 10000",
    )
    # Per queue, overriding ``concurrency`` and a pipeline's own.
    queue_concurrency: Mapping[str, int] = setting(
        toml="table of integers",
        env="SERVCORE_QUEUE_CONCURRENCY",
        parse=_queue_concurrency,
        valid=lambda v: all(1 <= n <= 10_000 for n in v.values()),
        rule="a queue's concurrency must be between 1 and 10000",
        factory=dict,
    )
    # Worker processes for ``executor="process"`` tasks.
    processes: int = setting(
        toml="integer",
        env="SERVCORE_PROCESSES",
        parse=_integer,
        valid=lambda v: 1 <= v <= 1_000,
        rule="must be between 1 and 1000",
        factory=default_processes,
    )
    # Threads for plain ``def`` handlers, shared by every queue of the node.
    threads: int = setting(
        toml="integer",
        env="SERVCORE_THREADS",
        parse=_integer,
        valid=lambda v: 1 <= v <= 10_000,
        rule="must be between 1 and 10000",
        factory=default_threads,
    )
    lease: float = seconds(DEFAULT_LEASE, env="SERVCORE_LEASE")
    poll_interval: float = seconds(1.0)
    # How late a waiter (service.wait, GET /jobs/{id}?wait=) sees a finish
    # whose notification was lost: it reads its job this often besides.
    wait_poll_interval: float = seconds(1.0)
    shutdown_grace: float = seconds(15.0, env="SERVCORE_SHUTDOWN_GRACE", at_least_zero=True)
    backoff: Backoff = setting(DEFAULT_BACKOFF, toml="table")
    # A handler's result, as JSON, at most: a larger one fails the attempt.
    max_result_bytes: int = setting(
        DEFAULT_MAX_RESULT_BYTES,
        toml="integer",
        env="SERVCORE_MAX_RESULT_BYTES",
        parse=_integer,
        valid=lambda v: 1 <= v <= MAX_RESULT_BYTES_LIMIT,
        rule=f"must be between 1 and {MAX_RESULT_BYTES_LIMIT}",
    )


@dataclass(frozen=True, slots=True)
class MaintenanceSettings(_Part):
    """Read by the leader-run maintenance (rescuer, pruner, expirer) and unique jobs.

    ``leader_lease`` is how long the leader's hold lasts without renewal (at
    most ``lease``): a leader that dies, freezes or is cut off is replaced
    that long after its last renewal, plus at most a second."""

    max_rescues: int = setting(
        3, toml="integer", parse=_integer, valid=lambda v: v >= 0, rule="must be >= 0"
    )
    rescue_interval: float = seconds(0.5)
    leader_lease: float = seconds(5.0)
    retention: float = seconds(7 * 24 * 3600.0)
    prune_interval: float = seconds(3600.0)
    expire_interval: float = seconds(1.0)
    unique_period: float = seconds(3600.0)


@dataclass(frozen=True, slots=True)
class TelemetrySettings(_Part):
    """Prometheus metrics at GET /metrics, and on a port of their own if set
    (the seed's 9568; the only HTTP a ``servcore worker`` serves);
    OpenTelemetry spans (needs the ``otel`` extra, see servcore.tracing);
    how often the store is sampled for queue depths (``queue.depth``, on
    worker nodes) and at most read for the cluster-wide metrics (any node)."""

    metrics: bool = setting(True, toml="boolean", env="SERVCORE_METRICS", parse=_switch)
    metrics_port: int | None = setting(
        None,
        toml="integer",
        env="SERVCORE_METRICS_PORT",
        parse=_integer,
        valid=lambda v: v is None or 1 <= v <= 65535,
        rule="must be between 1 and 65535",
    )
    tracing: bool = setting(False, toml="boolean", env="SERVCORE_TRACING", parse=_switch)
    sample_interval: float = seconds(5.0)


# Part name → its settings class, in the order ServiceConfig holds them.
PARTS: dict[str, type[Any]] = {
    "http": HttpSettings,
    "auth": AuthSettings,
    "runtime": RuntimeSettings,
    "maintenance": MaintenanceSettings,
    "telemetry": TelemetrySettings,
}

# The two settings every part may need: where the jobs are and who this node is.
_TOP: dict[str, SettingSpec] = {
    "store": SettingSpec("service", "string", ("SERVCORE_STORE",)),
    "node": SettingSpec("service", "string", ("SERVCORE_NODE",)),  # checked by ServiceConfig
}


def _collect() -> dict[str, SettingSpec]:
    table = dict(_TOP)
    for part, cls in PARTS.items():
        for item in dataclasses.fields(cls):
            table[item.name] = replace(item.metadata["setting"], part=part)
    return table


SETTINGS: dict[str, SettingSpec] = _collect()
"""The one table: setting name → its spec (part, TOML type, environment, rule)."""


@dataclass(frozen=True, slots=True, init=False)
class ServiceConfig:
    """Everything a :class:`~servcore.service.Service` needs to know, by part.

    Built from flat setting names (``ServiceConfig(concurrency=16, port=8080)``)
    or whole parts (``ServiceConfig(http=HttpSettings(port=8080))``); flat
    names are laid over the parts given. Times are seconds.
    """

    store: str
    node: str
    http: HttpSettings
    auth: AuthSettings
    runtime: RuntimeSettings
    maintenance: MaintenanceSettings
    telemetry: TelemetrySettings

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        *,
        node: str | None = None,
        http: HttpSettings | None = None,
        auth: AuthSettings | None = None,
        runtime: RuntimeSettings | None = None,
        maintenance: MaintenanceSettings | None = None,
        telemetry: TelemetrySettings | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(name for name in settings if name not in SETTINGS or name in _TOP)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        node = default_node() if node is None else node
        if not node:
            raise ConfigError("node name must not be empty")
        given: dict[str, Any] = {
            "http": http,
            "auth": auth,
            "runtime": runtime,
            "maintenance": maintenance,
            "telemetry": telemetry,
        }
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "node", node)
        for part, cls in PARTS.items():
            current = given[part] if given[part] is not None else cls()
            mine = {name: value for name, value in settings.items() if SETTINGS[name].part == part}
            object.__setattr__(self, part, replace(current, **mine) if mine else current)

    def with_overrides(self, **overrides: Any) -> ServiceConfig:
        """A copy with the given settings (flat names or whole parts) changed;
        ``None`` values are ignored."""
        changes = {name: value for name, value in overrides.items() if value is not None}
        parts = {part: changes.pop(part, getattr(self, part)) for part in PARTS}
        return ServiceConfig(
            changes.pop("store", self.store),
            node=changes.pop("node", self.node),
            **parts,
            **changes,
        )

    def settings(self) -> dict[str, Any]:
        """Every setting by its flat name (what ``with_overrides`` takes)."""
        values: dict[str, Any] = {"store": self.store, "node": self.node}
        for part in PARTS:
            settings = getattr(self, part)
            values.update({f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})
        return values

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceConfig:
        """Defaults, then the environment, then ``overrides`` (the CLI's flags)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls().with_overrides(**{**env_overrides(env), **given})


def env_overrides(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment gives, by setting name."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        for variable in spec.env:
            text = env.get(variable)
            if text:
                values[name] = spec.parse(variable, text)
                break
    return values
