"""The attack run's slow-connection flood: 1,100 dribbling connections against a
``servcore serve`` limited to 1,024 file descriptors (as under ``ulimit -n
1024``). ``/health`` and ``POST /jobs`` from another client keep answering.

Without limits the server took every connection and kept it, ran out of
descriptors near 1,000, and could accept nothing more: ``/health`` failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import servcore_serve

pytestmark = pytest.mark.slow

ATTACKERS = 1_100
ATTACK_SECONDS = 12.0


class Dribbler:
    """A connection that starts a request and sends one more header byte now and then."""

    def __init__(self) -> None:
        self.closed_by_server = False

    async def run(self, port: int, stop: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        watching = asyncio.create_task(self._watch(reader))
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            while not stop.is_set() and not watching.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)  # the attack's pace
                writer.write(b"a")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            with contextlib.suppress(ConnectionError):
                await watching

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass
        self.closed_by_server = True


async def probe(url: str) -> tuple[float, float]:
    """``GET /health`` then ``POST /jobs`` on fresh connections; seconds each took."""
    timings = []
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        started = time.monotonic()
        health = await client.get("/health")
        timings.append(time.monotonic() - started)
        assert health.status_code == 200, health.text
        started = time.monotonic()
        submitted = await client.post("/jobs", json={"payload": {"probe": True}})
        timings.append(time.monotonic() - started)
        assert submitted.status_code == 202, submitted.text
    return timings[0], timings[1]


async def test_health_and_submissions_answer_through_a_flood_of_dribblers(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    # The default limits (10 s for headers) but for the cap, which the
    # descriptor limit lowers by itself: 1,024 - 128 kept for the rest.
    with servcore_serve(tmp_path, "--store", store, max_open_files=1024) as server:
        server.wait_ready()
        stop = asyncio.Event()
        dribblers = [Dribbler() for _ in range(ATTACKERS)]
        attack = [asyncio.create_task(d.run(server.port, stop)) for d in dribblers]
        try:
            probes = []
            started = time.monotonic()
            while time.monotonic() - started < ATTACK_SECONDS:
                probes.append(await probe(server.url))
            closed = sum(d.closed_by_server for d in dribblers)
        finally:
            stop.set()
            await asyncio.gather(*attack)
        assert server.process.poll() is None, server.output()
    # Every probe answered, none slowly, all through the attack.
    assert len(probes) >= 5
    slowest = max(max(timing) for timing in probes)
    assert slowest < 5, probes
    # The server shed connections instead of running out of descriptors.
    assert closed >= ATTACKERS - 1024, closed
    assert "Too many open files" not in server.output()
