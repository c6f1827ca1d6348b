"""The HTTP server sheds abuse: each connection limit, on a real server over TCP.

Every limit is set small (1 s, a few connections) so the tests are quick;
the deadlines they wait with are generous, yet short of the time a server
without that limit would take (for ever, or uvicorn's 5 s keep-alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from servcore import Service, create_app
from servcore.config import HttpSettings
from servcore.process_main import http_server
from servcore.store import MemoryStore
from tests.conftest import fast_config, wait_for

HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
Start = Callable[..., Awaitable[int]]


class Gate:
    """An ASGI app: ``/block`` waits until opened (a busy request), the rest
    goes to the servcore app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = asyncio.Event()
        self.blocked = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/block":
            self.blocked += 1
            await self.open.wait()
        await self.app(scope, receive, send)


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    started = Service(MemoryStore(), config=fast_config())
    await started.start(workers=False)
    yield started
    await started.stop(grace=0)


@pytest.fixture
async def gate(service: Service) -> Gate:
    return Gate(create_app(service, manage_service=False))


@pytest.fixture
async def start(gate: Gate) -> AsyncIterator[Start]:
    """Serve the gate with the given HTTP settings on a free port; its port."""
    servers = []

    async def start_(**settings: Any) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        server = http_server(gate, HttpSettings(**settings))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task, sock))
        await wait_for(lambda: server.started, message="the server to start")
        return int(sock.getsockname()[1])

    yield start_
    gate.open.set()
    for server, task, sock in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


Connect = Callable[[int], Awaitable["Client"]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw connections to a port; all closed afterwards."""
    clients: list[Client] = []

    async def connect_(port: int) -> Client:
        clients.append(Client(*await asyncio.open_connection("127.0.0.1", port)))
        return clients[-1]

    yield connect_
    for client in clients:
        await client.close()


class Client:
    """One raw TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, within: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers, body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body

    async def closed_within(self, seconds: float) -> float:
        """Seconds until the server closed the connection (reading what it sent);
        fails if it stays open past ``seconds``."""
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while await asyncio.wait_for(self.reader.read(65536), seconds):
                pass
        return time.monotonic() - started

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def assert_json_error(
    response: tuple[int, dict[str, str], bytes], status: int, *fragments: str
) -> None:
    code, headers, body = response
    assert code == status, (code, body)
    assert headers["content-type"] == "application/json"
    message = json.loads(body)["error"]
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message


async def test_a_silent_connection_is_closed_after_the_header_timeout(
    start: Start, connect: Connect
) -> None:
    port = await start(header_timeout=1)
    client = await connect(port)
    waited = await client.closed_within(6)
    assert waited >= 0.9


async def test_dribbled_headers_get_408_after_the_header_timeout(
    start: Start, connect: Connect
) -> None:
    port = await start(header_timeout=1)
    client = await connect(port)
    started = time.monotonic()
    answered: list[tuple[int, dict[str, str], bytes]] = []

    async def read() -> None:
        answered.append(await client.response(within=6))

    reading = asyncio.create_task(read())
    with contextlib.suppress(ConnectionError):
        for byte in b"GET /health HTTP/1.1\r\nX-Dribble: " + b"a" * 1000:
            if reading.done():
                break
            await client.send(bytes([byte]))
            await asyncio.sleep(0.05)  # the attack's pace, not a wait for the server
    await reading
    assert time.monotonic() - started < 6
    assert_json_error(answered[0], 408, "headers not complete within 1 s")
    await client.closed_within(6)


async def test_a_dribbled_body_gets_408_and_stores_nothing(
    start: Start, connect: Connect, service: Service
) -> None:
    port = await start(body_timeout=1)
    client = await connect(port)
    await client.send(
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"payload": '
    )
    assert_json_error(await client.response(within=6), 408, "body not complete within 1 s")
    await client.closed_within(6)
    assert (await service.count_jobs()).total == 0


async def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(
    start: Start, connect: Connect
) -> None:
    port = await start(keepalive_timeout=1)
    client = await connect(port)
    await client.send(HEALTH)
    assert (await client.response())[0] == 200
    assert await client.closed_within(3.5) >= 0.9  # uvicorn's own: 5 s


async def test_blank_lines_do_not_keep_an_idle_connection_open(
    start: Start, connect: Connect
) -> None:
    port = await start(keepalive_timeout=1, header_timeout=1)
    client = await connect(port)
    await client.send(HEALTH)
    assert (await client.response())[0] == 200
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        while time.monotonic() - started < 6 and not client.reader.at_eof():
            await client.send(b"\r\n")  # bytes, but never a request
            await asyncio.sleep(0.1)
    assert await client.closed_within(1) >= 0
    assert time.monotonic() - started < 4


async def test_a_kept_alive_connection_serves_several_requests(
    start: Start, connect: Connect
) -> None:
    port = await start(keepalive_timeout=2, header_timeout=2, body_timeout=2)
    client = await connect(port)
    for _ in range(3):
        await client.send(HEALTH)
        assert (await client.response())[0] == 200
    body = b'{"payload": {"n": 1}}'
    await client.send(
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    assert (await client.response())[0] == 202
    await client.close()


@pytest.mark.parametrize("size", [20 * 1024, 8 * 1024 * 1024])
async def test_headers_over_the_limit_get_431(start: Start, connect: Connect, size: int) -> None:
    port = await start()  # the default limit, 16 KiB
    client = await connect(port)
    sending = asyncio.create_task(
        client.send(
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
        )
    )
    assert_json_error(await client.response(), 431, "larger than the limit of 16384 bytes")
    with contextlib.suppress(ConnectionError):
        await sending  # the server stopped reading: it did not take the 8 MiB in
    await client.closed_within(6)


async def test_many_headers_over_the_limit_get_431(start: Start, connect: Connect) -> None:
    port = await start(max_header_bytes=4096)
    client = await connect(port)
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 40) for n in range(100))
    await client.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    assert_json_error(await client.response(), 431, "4096 bytes")


async def test_headers_under_the_limit_pass(start: Start, connect: Connect) -> None:
    port = await start()
    client = await connect(port)
    await client.send(
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 12_000 + b"\r\n\r\n"
    )
    assert (await client.response())[0] == 200
    await client.close()


async def test_past_the_connection_cap_a_new_connection_gets_503(
    start: Start, connect: Connect, gate: Gate
) -> None:
    port = await start(max_connections=3)
    busy = [await connect(port) for _ in range(3)]
    for client in busy:
        await client.send(b"GET /block HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    deadline = time.monotonic() + 10
    while gate.blocked < 3:  # all three are being served
        assert time.monotonic() < deadline, "the busy requests never reached the app"
        await asyncio.sleep(0.01)
    extra = await connect(port)
    await extra.send(HEALTH)
    response = await extra.response()
    assert_json_error(response, 503, "too many open connections")
    assert response[1]["connection"] == "close"
    await extra.closed_within(6)

    gate.open.set()
    for client in busy:
        assert (await client.response())[0] == 404  # /block is no route of the API
        await client.close()
    after = await connect(port)
    await after.send(HEALTH)
    assert (await after.response())[0] == 200


async def test_at_the_cap_the_longest_waiting_connection_makes_room(
    start: Start, connect: Connect
) -> None:
    port = await start(max_connections=3)
    silent = [await connect(port) for _ in range(3)]
    newcomer = await connect(port)
    await newcomer.send(HEALTH)
    assert (await newcomer.response())[0] == 200
    await silent[0].closed_within(6)  # the first to connect, waiting longest
    await newcomer.close()
    for client in silent[1:]:
        await client.close()


@pytest.mark.parametrize(
    ("request_bytes", "fragment"),
    [
        pytest.param(b"GET /health HTTP/1.1\r\nX-A: a\x01b\r\n\r\n", "header", id="control-char"),
        pytest.param(b"GET /a b HTTP/1.1\r\n\r\n", "percent-encoded", id="space-in-target"),
        pytest.param(b"GET /health HTTP/9.9\r\n\r\n", "HTTP version", id="http-9.9"),
        pytest.param(b"G@T /health HTTP/1.1\r\n\r\n", "method", id="bad-method"),
        pytest.param(b"POST /jobs HTTP/1.1\r\nContent-Length: x\r\n\r\n", "length", id="length"),
        pytest.param(b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n", "header", id="header-name"),
    ],
)
async def test_requests_the_parser_refuses_get_json_400(
    start: Start, connect: Connect, request_bytes: bytes, fragment: str
) -> None:
    port = await start()
    client = await connect(port)
    await client.send(request_bytes)
    assert_json_error(await client.response(), 400, fragment)
    await client.closed_within(6)
