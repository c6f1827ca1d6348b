"""``servcore``: serve, worker, enqueue, jobs, migrate — thin over :class:`Service`.

Every failure a user can cause (a bad flag, an unreachable store, a taken
port) ends with one line on stderr and a non-zero exit: 2 for bad usage,
1 for everything else.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import uvloop

from servcore import job_requests
from servcore.cli_types import JOB_ID, Seconds, WholeNumber
from servcore.config import env_overrides
from servcore.config_file import load_configuration
from servcore.errors import ConfigError
from servcore.http.serialization import job_to_json, queue_to_json
from servcore.job_reads import JobPage, JobQuery, QueueInfo, StatusFilter
from servcore.job_requests import JobRequestError, JobStateError
from servcore.logs import FORMATS, LEVELS, configure_logging, configure_logging_unless_set
from servcore.process_main import ServeError, run_workers, serve
from servcore.service import Service
from servcore.store import missing_database
from servcore.store.base import StoreError
from servcore.timestamps import TimestampError, parse_timestamp

T = TypeVar("T")
log = logging.getLogger("servcore")
_CONFIG_KEY = "servcore.config_path"
_APP_DIR_KEY = "servcore.app_dir"


class UsageFailure(click.ClickException):
    """A one-line error for something the user must type differently: exit 2."""

    exit_code = 2


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop, turning known failures into one line."""
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    except JobStateError as error:  # what was typed is fine; the job is not in that state
        raise click.ClickException(str(error)) from None
    except JobRequestError as error:  # what was typed is not: a bad queue name, task, option
        raise UsageFailure(str(error)) from None
    except (StoreError, ServeError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        sys.exit(130)


def _load_service(target: str | None) -> Service:
    if target is None:
        return Service()
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter("write it as module:attribute, e.g. myapp.jobs:service")
    # As uvicorn and gunicorn do: the app is imported from the current
    # directory (or --app-dir), whatever PYTHONPATH says.
    context = click.get_current_context(silent=True)
    app_dir = (context.meta.get(_APP_DIR_KEY) if context is not None else None) or Path.cwd()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise click.BadParameter(f"cannot import {module_name!r}: {error}") from None
    value = getattr(module, attribute, None)
    if callable(value) and not isinstance(value, Service):
        value = value()
    if not isinstance(value, Service):
        raise click.BadParameter(f"{target} is not a servcore Service")
    return value


def _prepare(target: str | None, **flags: Any) -> Service:
    """The service, with the configuration file and the environment (read by
    the one loader ``Service()`` uses too) and then the flags laid over its
    own settings."""
    try:
        context = click.get_current_context(silent=True)
        explicit = context.meta.get(_CONFIG_KEY) if context is not None else None
        loaded = load_configuration(explicit)
        config_file = loaded.file
        if config_file is not None:
            log.info("Configuration from %s", config_file.path)
            target = target or config_file.service
        service = _load_service(target)
        if config_file is not None and service.config_file != config_file.path:
            config_file.apply(service)
        given = {name: value for name, value in flags.items() if value is not None}
        service.configure(**{**env_overrides(), **given})
    except (ConfigError, StoreError) as error:
        raise click.ClickException(str(error)) from None
    return service


_TARGET = click.argument("target", required=False, metavar="[MODULE:SERVICE]")
_STORE = click.option(
    "--store", help="Store URL (env SERVCORE_STORE). Default sqlite:///servcore.db"
)
_NODE = click.option("--node", help="Node name (env SERVCORE_NODE). Default hostname-pid")
_CONCURRENCY = click.option(
    "--concurrency",
    type=WholeNumber(1, 10_000),
    help="Jobs run at once per queue (env SERVCORE_CONCURRENCY). Default: CPU count",
)
_GRACE = click.option(
    "--shutdown-grace",
    type=Seconds(0, 3600),
    help="Seconds running jobs get to finish on SIGTERM (env SERVCORE_SHUTDOWN_GRACE). Default 15",
)


def _parse_queues(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter("give one or more queue names, e.g. video,pdf")
    return names


_QUEUES = click.option(
    "--queues",
    callback=_parse_queues,
    help="Comma-separated queues this node runs, e.g. video,pdf (env SERVCORE_QUEUES). "
    "Default: default, plus the queues of registered tasks",
)
_LEASE = click.option(
    "--lease",
    type=Seconds(1, 3600),
    help="Seconds a claim holds without renewal; a dead node's jobs return after it "
    "(env SERVCORE_LEASE). Default 30",
)
_METRICS_PORT = click.option(
    "--metrics-port",
    type=WholeNumber(1, 65535),
    help="Also serve GET /metrics on this port, e.g. 9568 (env SERVCORE_METRICS_PORT)",
)
_LOG_LEVEL = click.option(
    "--log-level", type=click.Choice(LEVELS), default="info", show_default=True
)
_LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    envvar="SERVCORE_LOG_FORMAT",
    help="text: the seed's lines; json: one object a line, with job fields (env "
    "SERVCORE_LOG_FORMAT)",
)


@click.group()
@click.version_option(package_name="servcore")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SERVCORE_CONFIG",
    help="Configuration file (env SERVCORE_CONFIG). Default: ./servcore.toml, "
    "else [tool.servcore] in ./pyproject.toml",
)
@click.option(
    "--app-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    envvar="SERVCORE_APP_DIR",
    help="Import MODULE:SERVICE from this directory (env SERVCORE_APP_DIR). Default: the "
    "current one",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, app_dir: Path | None) -> None:
    """Durable background jobs with an HTTP JSON API."""
    ctx.meta[_CONFIG_KEY] = config_path
    ctx.meta[_APP_DIR_KEY] = app_dir.resolve() if app_dir is not None else None


@main.command(name="serve")
@_TARGET
@click.option("--host", help="Bind address (env SERVCORE_HOST). Default 127.0.0.1")
@click.option("--port", type=WholeNumber(1, 65535), help="Port (env PORT). Default 4000")
@_STORE
@_NODE
@_CONCURRENCY
@_QUEUES
@_GRACE
@_LEASE
@click.option(
    "--workers/--no-workers",
    default=True,
    show_default=True,
    help="Also run the queues here, or serve the API only (an API node).",
)
@click.option(
    "--allow-open",
    is_flag=True,
    default=None,
    help="With no API tokens configured, serve on a non-loopback address anyway "
    "(env SERVCORE_ALLOW_OPEN=1)",
)
@_METRICS_PORT
@click.option(
    "--header-timeout",
    type=click.FloatRange(0, min_open=True),
    help="Seconds a request has to send its headers, else 408 (env SERVCORE_HEADER_TIMEOUT). "
    "Default 10",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0, min_open=True),
    help="Seconds a request has to send its body after its headers, else 408 "
    "(env SERVCORE_BODY_TIMEOUT). Default 30",
)
@click.option(
    "--keepalive-timeout",
    type=click.FloatRange(0, min_open=True),
    help="Seconds a kept-alive connection may idle between requests "
    "(env SERVCORE_KEEPALIVE_TIMEOUT). Default 5",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    help="Open HTTP connections at most; past it the longest-waiting one is closed, or 503 "
    "(env SERVCORE_MAX_CONNECTIONS). Default 1000, lowered to fit the file-descriptor limit",
)
@click.option(
    "--max-header-bytes",
    type=click.IntRange(1024),
    help="Largest request line and headers, else 431 (env SERVCORE_MAX_HEADER_BYTES). "
    "Default 16384",
)
@_LOG_LEVEL
@_LOG_FORMAT
def serve_command(
    target: str | None, log_level: str, log_format: str, workers: bool, **flags: Any
) -> None:
    """Serve the HTTP API and run the workers."""
    configure_logging(log_level, log_format)
    service = _prepare(target, **flags)
    _run(lambda: serve(service, workers=workers))


@main.command(name="worker")
@_TARGET
@_STORE
@_NODE
@_CONCURRENCY
@_QUEUES
@_GRACE
@_LEASE
@_METRICS_PORT
@_LOG_LEVEL
@_LOG_FORMAT
def worker_command(target: str | None, log_level: str, log_format: str, **flags: Any) -> None:
    """Run the workers only, without HTTP."""
    configure_logging(log_level, log_format)
    service = _prepare(target, **flags)
    _run(lambda: run_workers(service))


def _with_store(
    service: Service, action: Callable[[], Coroutine[Any, Any, T]], *, existing: bool = False
) -> T:
    """Open the store (no workers), run ``action``, close it again.

    ``existing``: the command only reads or changes what is stored, so a
    database that is not there is a mistaken ``--store`` (opening would
    create an empty one and answer as if it were empty)."""
    configure_logging_unless_set("warning")

    async def run() -> T:
        if existing and (missing := await missing_database(service.config.store)) is not None:
            raise UsageFailure(
                f"{missing}: check --store (or SERVCORE_STORE); "
                "servcore enqueue or servcore migrate creates one"
            )
        await service.start(workers=False)
        try:
            return await action()
        finally:
            await service.stop()

    return _run(run)


def _echo_json(value: Any, *, pretty: bool = False) -> None:
    text = msgspec.json.encode(value)
    click.echo((msgspec.json.format(text) if pretty else text).decode())


@main.command(name="migrate")
@_TARGET
@_STORE
def migrate_command(target: str | None, **flags: Any) -> None:
    """Create or upgrade the store's schema, then exit."""
    service = _prepare(target, **flags)

    async def nothing() -> None:
        return None

    _with_store(service, nothing)  # opening the store migrates it
    click.echo(f"store ready: {service.config.store}")


def _parse_run_at(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except TimestampError as error:
        raise click.BadParameter(str(error)) from None


def _parse_payload(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    try:
        payload = msgspec.json.decode(value)
    except msgspec.DecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise click.BadParameter('must be a JSON object, e.g. \'{"to": "a@example.com"}\'')
    return payload


def _job_request_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--payload``, ``--queue``, ``--max-attempts``, …: one option per
    :class:`~servcore.jobs.JobRequest` field, with its type, range and help."""
    for request_field in reversed(job_requests.FIELDS):
        command = click.option(
            "--" + request_field.name.replace("_", "-"), **_option_settings(request_field)
        )(command)
    return command


def _option_settings(request_field: job_requests.RequestField) -> dict[str, Any]:
    settings: dict[str, Any] = {"help": request_field.description}
    low, high, low_open = request_field.bounds
    if request_field.kind == "object":
        settings.update(default="{}", callback=_parse_payload, help="JSON object")
    elif request_field.kind == "date-time":
        settings.update(
            callback=_parse_run_at, help="ISO 8601 with zone, e.g. 2030-01-01T00:00:00Z"
        )
    elif request_field.kind == "integer":
        settings["type"] = WholeNumber(
            None if low is None else int(low), None if high is None else int(high)
        )
    elif request_field.kind == "number":
        settings["type"] = Seconds(low, high, low_open=low_open)
    if request_field.default not in (None, msgspec.NODEFAULT) and request_field.kind != "object":
        settings.update(default=request_field.default, show_default=True)
    return settings


@main.command(name="enqueue")
@click.argument("task")
@_job_request_options
@click.argument("target", required=False, metavar="[MODULE:SERVICE]")
@_STORE
@click.option(
    "--create",
    is_flag=True,
    help="Enqueue to a queue that has never had jobs (else a new name is taken for a typo)",
)
def enqueue_command(
    task: str,
    payload: dict[str, Any],
    target: str | None,
    store: str | None,
    create: bool,
    **options: Any,
) -> None:
    """Submit a job for TASK straight into the store; prints the stored job.

    With MODULE:SERVICE, TASK must be one of its tasks."""
    service = _prepare(target, store=store)
    options = {name: value for name, value in options.items() if value is not None}
    try:
        new_job = service.build_job({"task": task, **payload}, **options)
    except JobRequestError as error:
        raise UsageFailure(str(error)) from None

    async def enqueue() -> Any:
        if not create:
            await _check_queue_exists(service, new_job.queue, verb="enqueue to")
        (job,) = await service.submit([new_job])
        return job

    job = _with_store(service, enqueue)
    _echo_json(job_to_json(job, service.clock.now()))


async def _check_queue_exists(service: Service, queue: str, *, verb: str) -> None:
    """Refuse a queue that has never had jobs, no live node runs and the
    configuration does not name: most likely a typo."""
    stored = {info.name for info, _ in await service.queues()}
    known = stored | set(service.router.known_queues(service.config))
    if queue in known or queue in await service.served_queues():
        return
    raise UsageFailure(
        f"no queue {queue!r} has ever had jobs (known: {', '.join(sorted(known))}); "
        f"to {verb} it anyway, add --create"
    )


@main.group(name="jobs")
def jobs_group() -> None:
    """Look at stored jobs."""


@jobs_group.command(name="list")
@click.option("--status", type=click.Choice(sorted(StatusFilter.ALL)))
@click.option("--queue")
@click.option("--page", type=WholeNumber(1), default=1, show_default=True)
@click.option("--per-page", type=WholeNumber(1, 200), default=50, show_default=True)
@click.option(
    "--after-id",
    type=WholeNumber(1, 2**63 - 1),
    help="Only jobs older than this id (the last one you have): pages at any depth.",
)
@_STORE
def jobs_list(
    status: str | None,
    queue: str | None,
    page: int,
    per_page: int,
    after_id: int | None,
    store: str | None,
) -> None:
    """Jobs, newest first, one JSON object per line."""
    service = _prepare(None, store=store)
    query = JobQuery(status, queue, (page - 1) * per_page, per_page, after_id=after_id)

    async def listing() -> JobPage:
        if queue is not None:
            await _check_queue_exists(service, queue, verb="list")
        return await service.list_jobs(query)

    found = _with_store(service, listing, existing=True)
    now = service.clock.now()
    for job in found.jobs:
        _echo_json(job_to_json(job, now))


def _job_command(name: str, summary: str, act: Callable[[Service, int], Any]) -> None:
    """``servcore jobs NAME ID``: act on one job, print it as JSON."""

    @jobs_group.command(name=name, help=summary)
    @click.argument("job_id", type=JOB_ID, metavar="ID")
    @_STORE
    def command(job_id: int, store: str | None) -> None:
        service = _prepare(None, store=store)
        job = _with_store(service, lambda: act(service, job_id), existing=True)
        if job is None:
            raise click.ClickException(f"job {job_id} not found")
        _echo_json(job_to_json(job, service.clock.now()), pretty=name == "get")


_job_command("get", "One job as JSON.", lambda service, job_id: service.get_job(job_id))
_job_command(
    "cancel",
    "Cancel a queued, scheduled or running job; prints the job as JSON.",
    lambda service, job_id: service.cancel_job(job_id),
)
_job_command(
    "retry",
    "Queue a failed or cancelled job again, due now; prints the job as JSON.",
    lambda service, job_id: service.retry_job(job_id),
)


@main.group(name="queues")
def queues_group() -> None:
    """Look at and pause or resume queues."""


@queues_group.command(name="list")
@_STORE
def queues_list(store: str | None) -> None:
    """Every queue, one JSON object per line."""
    service = _prepare(None, store=store)

    async def listing() -> tuple[list[tuple[QueueInfo, int | None]], dict[str, QueueInfo]]:
        queues = await service.queues()
        return queues, await service.unserved_queues([info for info, _ in queues])

    queues, unserved = _with_store(service, listing, existing=True)
    now = service.clock.now()
    for info, concurrency in queues:
        _echo_json(queue_to_json(info, concurrency, now, unserved=info.name in unserved))


def _pause_command(name: str, pause: bool) -> None:
    @queues_group.command(name=name, help=f"{name.capitalize()} the queue NAME.")
    @click.argument("queue", metavar="NAME")
    @_STORE
    @click.option(
        "--create", is_flag=True, help=f"{name.capitalize()} a queue that has never had jobs"
    )
    def command(queue: str, store: str | None, create: bool) -> None:
        service = _prepare(None, store=store)

        async def act() -> None:
            if not create:
                await _check_queue_exists(service, queue, verb=name)
            await (service.pause_queue if pause else service.resume_queue)(queue)

        _with_store(service, act, existing=not create)
        click.echo(f"queue {queue} {name}d")


_pause_command("pause", True)
_pause_command("resume", False)
