"""Running a service as a process: HTTP + workers, or workers alone, until a signal.

SIGTERM or SIGINT starts a graceful stop: the HTTP server stops accepting,
the queues stop claiming, running jobs get ``shutdown_grace`` seconds to
finish, and what is still running then goes back to the queue without
spending an attempt. A second signal cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from servcore.config import HttpSettings, ServiceConfig
from servcore.errors import ServcoreError
from servcore.http import handlers
from servcore.http.app import create_app
from servcore.http.connections import ConnectionLimits, protocol_for
from servcore.http.gate import gated, is_loopback
from servcore.service import Service

log = logging.getLogger("servcore")


class ServeError(ServcoreError):
    """The process cannot run (port taken, store unreachable); one line says why."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _on_signals(first: Callable[[], None], again: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    received = 0

    def handle(signum: int) -> None:
        nonlocal received
        received += 1
        log.info("Received %s", signal.Signals(signum).name)
        (first if received == 1 else again)()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def http_server(app: ASGIApp, settings: HttpSettings) -> uvicorn.Server:
    """A uvicorn server for ``app`` whose connections keep the limits in ``settings``
    (see :mod:`servcore.http.connections`); serve it with ``serve(sockets=[…])``."""
    limits = ConnectionLimits.of(settings)
    if limits.max_connections < settings.max_connections:
        log.info(
            "At most %d HTTP connections (the file-descriptor limit is %d)",
            limits.max_connections,
            resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        )
    return _Server(
        uvicorn.Config(
            app,
            http=protocol_for(limits),
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,  # its loggers go to ours: one format (text or JSON)
            proxy_headers=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )


def _metrics_socket(service: Service) -> socket.socket | None:
    """The metrics port's socket, bound before anything starts (a taken port
    stops the process before its workers run)."""
    config = service.config
    if config.telemetry.metrics_port is None:
        return None
    if service.metrics is None:
        log.warning(
            "Metrics are switched off: not serving them on port %d", config.telemetry.metrics_port
        )
        return None
    try:
        return _listen(config.http.host, config.telemetry.metrics_port)
    except ServeError as error:
        raise ServeError(f"metrics port: {error}") from None


@contextlib.asynccontextmanager
async def _metrics_port(service: Service, sock: socket.socket | None) -> AsyncIterator[None]:
    """Serve ``GET /metrics`` alone on ``sock``, if there is one."""
    config = service.config
    if sock is None:
        yield
        return
    app = gated(
        Starlette(routes=[Route("/metrics", partial(handlers.metrics, service=service))]), service
    )
    server = http_server(app, config.http)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="metrics server")
    log.info("Metrics on http://%s:%d/metrics", config.http.host, config.telemetry.metrics_port)
    try:
        yield
    finally:
        server.should_exit = True
        try:
            await serving
        except Exception:
            log.exception("The metrics server failed")
        sock.close()


def _check_exposure(config: ServiceConfig) -> None:
    """Without tokens the API is open: only on loopback, unless the user says so."""
    if not config.auth.tokens and not is_loopback(config.http.host) and not config.auth.allow_open:
        raise ServeError(
            f"refusing to serve on {config.http.host} with no API tokens: anyone who can reach it "
            "could change jobs. Configure tokens (SERVCORE_TOKENS=admin:<secret>), or bind to "
            "127.0.0.1, or pass --allow-open (SERVCORE_ALLOW_OPEN=1) to serve it open anyway"
        )


def _say_exposure(config: ServiceConfig) -> None:
    if config.auth.tokens:
        count = len(config.auth.tokens)
        log.info("Access control: %d API token(s); every route checks its scope", count)
    elif is_loopback(config.http.host):
        log.warning("No API tokens configured: the API is open to anyone on this machine")
    else:
        log.warning(
            "No API tokens configured and --allow-open given: the API is OPEN to anyone "
            "who can reach %s:%d",
            config.http.host,
            config.http.port,
        )


async def serve(service: Service, *, workers: bool = True) -> None:
    """Serve the HTTP API (and, with ``workers``, run the queues) until SIGTERM/SIGINT."""
    config = service.config
    _check_exposure(config)
    sock = _listen(config.http.host, config.http.port)
    try:
        metrics_sock = _metrics_socket(service)
    except ServeError:
        sock.close()
        raise
    await service.start(workers=workers)
    server = http_server(create_app(service, manage_service=False), config.http)

    def stop() -> None:
        server.should_exit = True

    def hurry() -> None:
        server.force_exit = True
        service.hurry()

    try:
        async with _metrics_port(service, metrics_sock):
            with _on_signals(stop, hurry):
                _say_exposure(config)
                host = f"[{config.http.host}]" if ":" in config.http.host else config.http.host
                log.info("Starting server on http://%s:%d", host, config.http.port)
                await server.serve(sockets=[sock])
                log.info("HTTP server stopped")
                await service.stop()
    finally:
        sock.close()
        await service.stop(0)
    log.info("Stopped")


async def run_workers(service: Service) -> None:
    """Run the workers only (no HTTP) until SIGTERM/SIGINT."""
    stopping = asyncio.Event()

    def hurry() -> None:
        stopping.set()
        service.hurry()

    metrics_sock = _metrics_socket(service)
    try:
        await service.start()
    except BaseException:
        if metrics_sock is not None:
            metrics_sock.close()
        raise
    try:
        async with _metrics_port(service, metrics_sock):
            with _on_signals(stopping.set, hurry):
                await stopping.wait()
                await service.stop()
    finally:
        await service.stop(0)
    log.info("Stopped")
