"""Shared helpers for the benchmark scripts (not a benchmark itself)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
VENV_BIN = Path(sys.executable).parent
SERVCORE = VENV_BIN / "servcore"


def machine() -> dict[str, Any]:
    """What the numbers were taken on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_machine() -> None:
    info = machine()
    print(
        f"# machine: {info['nproc']} CPU ({info['cpu']}), {info['memory']} RAM, "
        f"Python {info['python']}, {info['platform']}",
        flush=True,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def run_async(main: Callable[[], Coroutine[Any, Any, T]], loop: str = "uvloop") -> T:
    """Run ``main`` on uvloop (what ``servcore serve`` uses) or plain asyncio."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    with asyncio.Runner() as runner:
        return runner.run(main())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    """A tiny blocking JSON client (stdlib only) for set-up and checks."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_up(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 20.0) -> float:
    """Poll ``url`` until it answers 200; seconds it took. Raises on timeout or exit."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"server at {url} not up after {deadline_s:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20.0) -> int:
    """SIGTERM, wait up to ``grace`` s, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def spawn_worker(
    url: str,
    node: str,
    concurrency: int,
    lease: float | None = None,
    cwd: Path = ROOT,
    **env_extra: str,
) -> subprocess.Popen[bytes]:
    """``servcore worker pg_tasks:service`` (``benchmarks/pg_tasks.py``) on ``url``."""
    command = [
        str(SERVCORE),
        "worker",
        "pg_tasks:service",
        "--store",
        url,
        "--node",
        node,
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]
    if lease is not None:
        command += ["--lease", str(lease)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVCORE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(env_extra)
    return subprocess.Popen(command, env=env, cwd=cwd)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def emit_json(path: str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


class RawHttpConnection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx costs ~1 ms of client CPU per request here, which on 2 cores slows
    the server under test; this sends each request in one write and reads
    ``Content-Length`` bodies only (all servcore answers have one).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; (status, decoded JSON body). Raises OSError on a dead peer."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        try:
            reader, writer = await self._connect()
            writer.write(head + payload)
            await writer.drain()
            header = await reader.readuntil(b"\r\n\r\n")
            status = int(header.split(b" ", 2)[1])
            length = 0
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = await reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            await self.close()
            raise ConnectionError(str(error)) from None
        except OSError:
            await self.close()
            raise
        return status, json.loads(data) if data else None

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# -- PostgreSQL -------------------------------------------------------------

# Loopback only; trust auth. Every run gets a schema of its own, dropped after.
PG_DSN = os.environ.get("SERVCORE_BENCH_PG", "postgresql://root@127.0.0.1:5432/test")


def pg_new_schema() -> str:
    return f"bench_{os.urandom(5).hex()}"


def pg_url(schema: str, dsn: str = PG_DSN) -> str:
    return f"{dsn}?schema={schema}"


async def pg_drop_schema(schema: str, dsn: str = PG_DSN) -> None:
    import asyncpg

    if not schema.startswith("bench_") or not schema.replace("_", "").isalnum():
        raise ValueError(f"refusing to drop schema {schema!r}")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def pg_lost_connection(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a PostgreSQL connection that was cut.

    The test suite's termination tests run ``pg_terminate_backend`` on every
    client of the database; a benchmark run they hit is retried, not counted.
    """
    import asyncpg

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(
            seen,
            asyncpg.AdminShutdownError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.InterfaceError,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def run_pg(
    main: Callable[[], Coroutine[Any, Any, T]], loop: str = "uvloop", attempts: int = 3
) -> T:
    """``run_async``, again (up to ``attempts`` in all) if PostgreSQL cut a connection."""
    for attempt in range(1, attempts + 1):
        try:
            return run_async(main, loop)
        except Exception as error:
            if attempt == attempts or not pg_lost_connection(error):
                raise
            print(f"  (run lost its PostgreSQL connection: {error}; running it again)", flush=True)
    raise AssertionError("unreachable")
