"""The configuration file: ``servcore.toml``, or ``[tool.servcore]`` in ``pyproject.toml``.

::

    service = "myapp.jobs:service"      # optional: the Service to run (else a plain one)
    store = "sqlite:///servcore.db"     # any ServiceConfig setting: port, concurrency, lease, …
    concurrency = 8
    tasks = ["myapp.jobs:tasks"]        # TaskRegistry objects whose tasks to register

    [pipelines.email]                   # a named queue with settings of its own
    concurrency = 32
    tasks = "myapp.email:tasks"
    routes = "/email_jobs"

    [pipelines.media]
    concurrency = 2
    handler = "myapp.media:transcode"   # runs its jobs whose task has no handler of its own
    store = "sqlite:///media.db"        # a store of its own

    [[cron]]
    expression = "0 3 * * *"
    task = "nightly_report"
    timezone = "Europe/Berlin"
    queue = "email"
    payload = { format = "pdf" }

``Service()`` and the CLI read it the same way (:func:`load_configuration`):
the file over the defaults, the environment (``SERVCORE_*``, see
:mod:`servcore.config`) over the file, and explicit arguments (a store URL
given to ``Service``, CLI flags) over both. Every mistake — an unknown key, a wrong type, a module
that won't import — is a :class:`ConfigError` naming the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servcore.auth import ApiToken
from servcore.config import SETTINGS, env_overrides
from servcore.errors import ConfigError
from servcore.job_requests import JobRequestError
from servcore.pipelines import Pipeline, import_reference
from servcore.retry import Backoff
from servcore.store.base import StoreError
from servcore.tasks import TaskRegistry

if TYPE_CHECKING:
    from servcore.service import Service

FILE_NAME = "servcore.toml"

_TOKEN_KEYS = {"name": "string", "scope": "string", "token": "string", "sha256": "string"}
_PIPELINE_KEYS = {
    "concurrency": "integer",
    "handler": "string",
    "tasks": "string",
    "store": "string",
    "routes": "string",
}
_CRON_KEYS = {
    "expression": "string",
    "task": "string",
    "name": "string",
    "timezone": "string",
    "payload": "table",
    "queue": "string",
    "priority": "integer",
    "max_attempts": "integer",
    "timeout": "number",
    "backoff": "number",
    "result_ttl": "number",
}
_TOP_KEYS = {"service", "tasks", "pipelines", "cron", *SETTINGS}


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What a configuration file asks for, checked but not yet applied."""

    path: Path
    service: str | None
    settings: dict[str, Any]
    tasks: tuple[str, ...]
    pipelines: tuple[Pipeline, ...]
    cron: tuple[dict[str, Any], ...]

    def apply(self, service: Service) -> None:
        """Configure ``service`` (before it starts) as the file says."""
        try:
            service.configure(**self.settings)
        except (ValueError, StoreError) as error:
            raise ConfigError(f"{self.path}: {error}") from None
        self.declare(service)

    def declare(self, service: Service) -> None:
        """Register the file's tasks, pipelines and cron entries with ``service``."""
        try:
            for reference in self.tasks:
                registry = import_reference(reference, f"{self.path}: tasks")
                if not isinstance(registry, TaskRegistry):
                    raise ConfigError(
                        f"{self.path}: tasks {reference!r} is not a servcore TaskRegistry"
                    )
                service.registry.include(registry)
            for pipeline in self.pipelines:
                service.add_pipeline(pipeline)
            for entry in self.cron:
                options = dict(entry)
                expression, task = options.pop("expression"), options.pop("task")
                service.cron(expression, task, **options)
        except (ValueError, JobRequestError, StoreError) as error:
            if isinstance(error, ConfigError) and str(error).startswith(str(self.path)):
                raise
            raise ConfigError(f"{self.path}: {error}") from None


@dataclass(frozen=True, slots=True)
class Configuration:
    """What a process is configured with before its code says more: the
    configuration file's settings with the environment's laid over them."""

    file: ConfigFile | None
    settings: dict[str, Any]


def load_configuration(
    explicit: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Configuration:
    """The one loader ``Service()`` and the CLI share: the file named by
    ``explicit`` (``--config``), else ``SERVCORE_CONFIG``, else found in
    ``directory`` (default: the current one) by :func:`find_config_file`;
    then ``SERVCORE_*`` (see :mod:`servcore.config`) over its settings."""
    env = os.environ if env is None else env
    path = explicit or (Path(env["SERVCORE_CONFIG"]) if env.get("SERVCORE_CONFIG") else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    path = path or find_config_file(directory or Path.cwd())
    file = load_config_file(path) if path is not None else None
    settings = {**(file.settings if file is not None else {}), **env_overrides(env)}
    return Configuration(file, settings)


def find_config_file(directory: Path) -> Path | None:
    """``servcore.toml`` in ``directory``, else its ``pyproject.toml`` if that
    has a ``[tool.servcore]`` table, else None."""
    candidate = directory / FILE_NAME
    if candidate.is_file():
        return candidate
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file() and "servcore" in _read(pyproject).get("tool", {}):
        return pyproject
    return None


def load_config_file(path: Path) -> ConfigFile:
    """Read and check ``path``; raises ConfigError naming the file and key."""
    document = _read(path)
    if path.name == "pyproject.toml":
        document = document.get("tool", {}).get("servcore", {})
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: [tool.servcore] must be a table")
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}"
        )
    where = str(path)
    service = document.get("service")
    if service is not None:
        _check(where, "service", service, "string")
    settings = {
        name: _setting(where, name, value) for name, value in document.items() if name in SETTINGS
    }
    tasks = document.get("tasks", [])
    if isinstance(tasks, str):
        tasks = [tasks]
    _check(where, "tasks", tasks, "list of strings")
    return ConfigFile(
        path=path,
        service=service,
        settings=settings,
        tasks=tuple(tasks),
        pipelines=_pipelines(where, document.get("pipelines", {})),
        cron=_cron(where, document.get("cron", [])),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _setting(where: str, name: str, value: Any) -> Any:
    kind = SETTINGS[name].toml
    if kind == "tokens":
        return _tokens(where, value)
    _check(where, name, value, kind)
    if name == "queues":
        return tuple(value)
    if name == "backoff":
        for part, number in value.items():
            _check(where, f"backoff.{part}", number, "number")
        try:
            return Backoff(**value)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: backoff: {error}") from None
    return value


def _pipelines(where: str, tables: Any) -> tuple[Pipeline, ...]:
    _check(where, "pipelines", tables, "table")
    pipelines = []
    for name, table in tables.items():
        key = f"pipelines.{name}"
        _check(where, key, table, "table")
        _check_keys(where, key, table, _PIPELINE_KEYS)
        try:
            pipelines.append(Pipeline(name, **table))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return tuple(pipelines)


def _cron(where: str, entries: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: cron must be an array of tables ([[cron]])")
    for index, entry in enumerate(entries):
        key = f"cron[{index}]"
        _check_keys(where, key, entry, _CRON_KEYS)
        for required in ("expression", "task"):
            if required not in entry:
                raise ConfigError(f"{where}: {key} needs '{required}'")
    return tuple(dict(entry) for entry in entries)


def _tokens(where: str, entries: Any) -> tuple[ApiToken, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: tokens must be an array of tables ([[tokens]])")
    tokens = []
    for index, entry in enumerate(entries):
        key = f"tokens[{index}]"
        _check_keys(where, key, entry, _TOKEN_KEYS)
        if "scope" not in entry:
            raise ConfigError(f"{where}: {key} needs 'scope' (read, write or admin)")
        try:
            tokens.append(
                ApiToken.make(
                    entry.get("name", key),
                    entry["scope"],
                    token=entry.get("token"),
                    sha256=entry.get("sha256"),
                )
            )
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return tuple(tokens)


def _check_keys(where: str, key: str, table: Mapping[str, Any], known: Mapping[str, str]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: {key}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    for name, value in table.items():
        _check(where, f"{key}.{name}", value, known[name])


def _check(where: str, key: str, value: Any, kind: str) -> None:
    if not _is(value, kind):
        raise ConfigError(f"{where}: {key} must be {_article(kind)} {kind}, not {value!r}")


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "table of integers":
        return isinstance(value, dict) and all(_is(item, "integer") for item in value.values())
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"
