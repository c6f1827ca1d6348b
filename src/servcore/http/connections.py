"""HTTP/1.1 connections with limits: uvicorn's httptools protocol, made to shed abuse.

uvicorn closes an idle keep-alive connection, but a connection that never
finishes a request (sends nothing, or dribbles its headers or body) stays
open for ever, headers may be any size, and errors found by the HTTP parser
are answered in plain text. Here every connection that waits on its client
has a deadline:

- a new connection must complete its request's headers within
  ``header_timeout`` of connecting, a kept-alive one within ``header_timeout``
  of starting the next request (else ``408``, or a silent close if it sent
  nothing);
- a body must be complete within ``body_timeout`` of its headers (``408``);
- a kept-alive connection may idle ``keepalive_timeout`` between requests.

Headers over ``max_header_bytes`` get ``431`` (counted as they arrive, so
one endless header never gets buffered). Past ``max_connections`` open
connections, a new one makes room by closing the connection that has waited
longest on its client (an idle keep-alive, a dribbler); if every connection
is busy with a request the server is working on, the new one gets ``503``.
So a flood of slow connections cannot take the file descriptors that
``/health`` and ``POST /jobs`` need. Every refusal is JSON ``{"error": …}``.

Deadlines are kept in one ordered table per server and checked by one
timer, not a timer per request: the hot path only updates a dict entry.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from servcore.config import HttpSettings

# Descriptors kept for everything but HTTP connections: the store's
# connections and files, wake-up sockets, the event loop, logs, pipes.
RESERVED_DESCRIPTORS = 128

_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int
    max_header_bytes: int

    @classmethod
    def of(cls, settings: HttpSettings) -> ConnectionLimits:
        """The limits the settings give, with ``max_connections`` lowered to
        what the process's file-descriptor limit allows."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        allowed = settings.max_connections
        if soft != resource.RLIM_INFINITY:
            allowed = max(1, min(allowed, soft - RESERVED_DESCRIPTORS))
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_connections=allowed,
            max_header_bytes=settings.max_header_bytes,
        )


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _parser_refusal(error: httptools.HttpParserError) -> _Refusal:
    """What to answer a request the HTTP parser could not read."""
    if isinstance(error.__context__, _Refusal):  # raised by one of our callbacks
        return error.__context__
    reason = str(error)
    if reason == "Invalid HTTP version":
        return _Refusal(400, "Unsupported HTTP version: send HTTP/1.1 (or HTTP/1.0)")
    if reason.startswith("Expected HTTP/"):
        return _Refusal(
            400,
            "Malformed request line: send METHOD /target HTTP/1.1, with any space "
            "in the target percent-encoded",
        )
    return _Refusal(400, f"Malformed HTTP request: {reason[:1].lower()}{reason[1:]}")


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    body = _encode({"error": "Server busy: too many open connections, try again shortly"})
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Where a connection is in its request; all but "busy" wait on the client.
_NEW, _IDLE, _HEADERS, _BODY, _BUSY = "new", "idle", "headers", "body", "busy"
_LINGER = "linger"  # refused: the answer is sent, what still comes is dropped
_READING_HEADERS = (_NEW, _IDLE, _HEADERS)
# How long a refused connection drains before it closes: closing with unread
# data resets the connection, and the client may lose the answer with it.
LINGER_SECONDS = 2.0


class _Board:
    """The connections of one server that wait on their clients, oldest wait
    first, each with its deadline; one timer closes the overdue ones."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.waiting: dict[LimitedHttpProtocol, float] = {}
        shortest = min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout)
        self._tick = min(1.0, max(0.05, shortest / 5))
        self._timer: asyncio.TimerHandle | None = None

    def wait(self, connection: LimitedHttpProtocol, deadline: float) -> None:
        """``connection`` waits on its client until ``deadline`` (an entry
        already there keeps its place: its wait began earlier)."""
        self.waiting[connection] = deadline
        if self._timer is None:
            self._timer = connection.loop.call_later(self._tick, self._sweep, connection.loop)

    def done(self, connection: LimitedHttpProtocol) -> None:
        self.waiting.pop(connection, None)

    def longest_waiting(self, other_than: LimitedHttpProtocol) -> LimitedHttpProtocol | None:
        for connection in self.waiting:
            if connection is not other_than:
                return connection
        return None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection, deadline in list(self.waiting.items()):
            if deadline <= now:
                self.done(connection)
                connection.expire()
        self._timer = loop.call_later(self._tick, self._sweep, loop) if self.waiting else None


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see :func:`protocol_for`."""

    board: _Board

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = self.board.limits
        self._phase = _NEW
        self._header_bytes = 0  # as received, while headers are still coming

    # -- the connection ---------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.board.wait(self, self.loop.time() + self._limits.header_timeout)
        if len(self.connections) > self._limits.max_connections:
            longest = self.board.longest_waiting(other_than=self)
            if longest is not None:
                longest.shed()
            else:  # every other connection is busy: answer this one 503
                self.app = _over_capacity

    def connection_lost(self, exc: Exception | None) -> None:
        self.board.done(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _LINGER:
            return
        if self._phase in _READING_HEADERS:
            self._header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as error:
            refusal = _parser_refusal(error)
            self.refuse(refusal.status, refusal.message)
            return
        if self._phase in _READING_HEADERS and self._header_bytes > self._limits.max_header_bytes:
            self.refuse(431, self._headers_too_large())

    # -- parser callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase in (_IDLE, _BUSY):  # kept alive, or pipelined behind a request
            self.board.wait(self, self.loop.time() + self._limits.header_timeout)
        self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        # What the client sent, less the method and version: the target, and
        # each header's name and value with ": " and CRLF.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_header_bytes:
            raise _Refusal(431, self._headers_too_large())
        self._phase = _BODY
        self.board.wait(self, self.loop.time() + self._limits.body_timeout)
        super().on_headers_complete()
        if self.app is _over_capacity:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _BUSY
        self._header_bytes = 0
        self.board.done(self)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # The board, not uvicorn's own timer, keeps the keep-alive deadline.
        self._unset_keepalive_if_required()
        if self._phase == _BUSY and not pipelined and not self.transport.is_closing():
            self._phase = _IDLE
            self.board.wait(self, self.loop.time() + self._limits.keepalive_timeout)

    # -- closing ------------------------------------------------------------

    def expire(self) -> None:
        """The client missed its deadline."""
        if self._phase == _LINGER:
            self.transport.close()
        elif self._phase == _HEADERS or (self._phase == _NEW and self._header_bytes):
            seconds = self._limits.header_timeout
            self.refuse(408, f"Request headers not complete within {seconds:g} s")
        elif self._phase == _BODY:
            seconds = self._limits.body_timeout
            self.refuse(408, f"Request body not complete within {seconds:g} s")
        else:  # nothing asked yet, or idle between requests
            self.transport.close()

    def shed(self) -> None:
        """Close to make room for a new connection."""
        self.board.done(self)
        self.transport.close()

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error (unless a response has started)
        and close."""
        if self.transport.is_closing() or self._phase == _LINGER:
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            body = _encode({"error": message})
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(
                b"content-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % len(body)
            )
            self.transport.write(b"".join([*head, body]))
        if self.cycle is not None and not self.cycle.response_complete:
            # The app (waiting for the body, or answering) hears the client has
            # gone; what it sends now goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._linger()

    def _linger(self) -> None:
        """Send nothing more and drop what the client still sends, for a moment
        (or until it closes), then close."""
        self._phase = _LINGER
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self.board.wait(self, self.loop.time() + LINGER_SECONDS)

    def _headers_too_large(self) -> str:
        return f"Request headers are larger than the limit of {self._limits.max_header_bytes} bytes"


def protocol_for(limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
    """The protocol class for one server (its connections share one board)."""

    class ServerProtocol(LimitedHttpProtocol):
        board = _Board(limits)

    return ServerProtocol
