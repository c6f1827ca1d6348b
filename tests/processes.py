"""Starting ``servcore`` as a real process for tests, and talking to it."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVCORE = Path(sys.executable).parent / "servcore"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 20.0, path: str = "/health") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)


@contextmanager
def servcore_serve(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    name: str = "server",
    max_open_files: int | None = None,
) -> Iterator[ServerProcess]:
    """``servcore serve`` on a free port (with ``max_open_files``: as under
    ``ulimit -n``)."""
    port = free_port()
    command = ["serve", "--port", str(port), *args]
    with _servcore(tmp_path, command, env, name, port, max_open_files) as server:
        yield server


@contextmanager
def servcore_worker(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "worker"
) -> Iterator[ServerProcess]:
    """``servcore worker`` (no HTTP; ``port`` and ``url`` mean nothing)."""
    with _servcore(tmp_path, ["worker", *args], env, name, 0) as worker:
        yield worker


@contextmanager
def _servcore(
    tmp_path: Path,
    command: list[str],
    env: dict[str, str] | None,
    name: str,
    port: int,
    max_open_files: int | None = None,
) -> Iterator[ServerProcess]:
    with spawn(tmp_path, [str(SERVCORE), *command], env, name, port, max_open_files) as server:
        yield server


@contextmanager
def spawn(
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str] | None,
    name: str,
    port: int,
    max_open_files: int | None = None,
) -> Iterator[ServerProcess]:
    """Run ``argv`` in ``tmp_path``, its output in a log file there; killed at
    the end (with ``max_open_files``: as under ``ulimit -n``)."""
    log = tmp_path / f"{name}-{port}.log"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}

    def limit_files() -> None:
        if max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    with log.open("w") as sink:
        process = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit_files if max_open_files is not None else None,
        )
    server = ServerProcess(process, port, log)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def post_many(
    port: int, path: str, bodies: list[bytes], connections: int = 16
) -> list[tuple[int, bytes]]:
    """POST each body over a few keep-alive connections; (status, body) in order.

    A minimal HTTP/1.1 client: for bulk submission it is an order of
    magnitude faster than httpx, which keeps the crash test short.
    """
    results: list[tuple[int, bytes]] = [(0, b"")] * len(bodies)
    indexes = iter(range(len(bodies)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in indexes:
                body = bodies[index]
                writer.write(
                    b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
                )
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split()[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in lines
                    if line.lower().startswith(b"content-length:")
                )
                results[index] = (status, await reader.readexactly(length))
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return results


def is_gone(pid: int) -> bool:
    """Dead: reaped, or a zombie (an orphan's zombie waits for PID 1 to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")
