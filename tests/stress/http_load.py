"""The HTTP side of a stress round: a bounded keep-alive client and one mixed burst.

A burst sends, all at once over several connections: batches of up to 1,000
jobs, single ``POST /jobs``, reads of every kind, and control verbs that
leave the counted jobs' fates alone (pause/resume of a queue no job uses;
cancel and retry of a few extra jobs on a queue no worker runs, which end
cancelled; bulk and single retry/cancel of jobs already done, which must
change nothing). Every request is timed and must be answered within the
bound, or it is recorded as unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import msgspec

COUNTED_QUEUE = "default"
PARKED_QUEUE = "stress-parked"  # no worker runs it: its jobs only wait or get cancelled
IDLE_QUEUE = "stress-idle"  # no job uses it: paused and resumed every round
NO_ANSWER = 0  # status of a request not answered within the bound
BROKEN = -1  # status of a request whose connection failed

_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Answer:
    method: str
    path: str
    status: int
    seconds: float
    body: bytes
    expected: tuple[int, ...]

    @property
    def unexpected(self) -> bool:
        return self.status not in self.expected

    def json(self) -> object:
        return msgspec.json.decode(self.body)

    def __str__(self) -> str:
        shown = {NO_ANSWER: "no answer", BROKEN: "connection failed"}.get(
            self.status, str(self.status)
        )
        return f"{self.method} {self.path} -> {shown} after {self.seconds:.2f} s"


class Client:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1; every request gets ``bound`` s.

    A request that overruns is recorded with status ``NO_ANSWER`` and its
    connection is closed (the next request opens a new one).
    """

    def __init__(self, port: int, bound: float, answers: list[Answer]) -> None:
        self._port = port
        self._bound = bound
        self._answers = answers
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(
        self, method: str, path: str, body: bytes = b"", expect: tuple[int, ...] = (200,)
    ) -> Answer:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self._bound):
                status, data = await self._exchange(method, path, body)
        except TimeoutError:
            await self.close()
            status, data = NO_ANSWER, b""
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            await self.close()
            status, data = BROKEN, str(error).encode()
        answer = Answer(method, path, status, time.monotonic() - start, data, expect)
        self._answers.append(answer)
        return answer

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        writer.write(
            b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (method.encode(), path.encode(), len(body), body)
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length:")
        )
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()


@dataclass(frozen=True, slots=True)
class BurstPlan:
    number: int
    batches: list[int]  # the size of each POST /jobs/batch
    singles: int  # single POST /jobs
    extras: int  # jobs on the parked queue, cancelled, retried, cancelled again
    done: list[int]  # a few jobs known to be done: read, and sent no-op control verbs
    reads_per_kind: int
    connections: int  # for the batches; singles, reads and control get their own
    bound: float


@dataclass(slots=True)
class BurstResult:
    accepted: list[int] = field(default_factory=list)  # counted jobs: must each run once
    extras: list[int] = field(default_factory=list)  # must end cancelled, never run
    answers: list[Answer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # control answers that said otherwise
    reads: int = 0


async def burst(port: int, plan: BurstPlan) -> BurstResult:
    """Send one round's mixed burst; what was accepted and how every request went."""
    result = BurstResult()
    writing = _Writing(port, plan, result)
    writers = asyncio.gather(writing.batches(), writing.singles(), writing.control())
    reading = asyncio.gather(
        *(_read(Client(port, plan.bound, result.answers), plan, writing) for _ in range(2))
    )
    try:
        await writers
    finally:
        writing.finished = True
        await reading
    return result


class _Writing:
    def __init__(self, port: int, plan: BurstPlan, result: BurstResult) -> None:
        self.port, self.plan, self.result = port, plan, result
        self.finished = False

    def client(self) -> Client:
        return Client(self.port, self.plan.bound, self.result.answers)

    async def batches(self) -> None:
        sizes = iter(self.plan.batches)
        bodies: dict[int, bytes] = {}
        payload = {"payload": {"task": "record", "round": self.plan.number}}

        async def connection() -> None:
            client = self.client()
            for size in sizes:
                body = bodies.setdefault(size, _encode({"jobs": [payload] * size}))
                answer = await client.send("POST", "/jobs/batch", body, expect=(202,))
                if answer.status == 202:
                    ids = _ids(answer, "job_ids")
                    if len(ids) != size:
                        self.result.problems.append(f"batch of {size} answered {len(ids)} ids")
                    self.result.accepted += ids
            await client.close()

        await asyncio.gather(*(connection() for _ in range(self.plan.connections)))

    async def singles(self) -> None:
        client = self.client()
        body = _encode({"payload": {"task": "record", "round": self.plan.number, "single": True}})
        for _ in range(self.plan.singles):
            answer = await client.send("POST", "/jobs", body, expect=(202,))
            if answer.status == 202:
                self.result.accepted += _ids(answer, "job_id")
        await client.close()

    async def control(self) -> None:
        """Verbs that must not change a counted job's fate; their answers are checked."""
        client, result = self.client(), self.result
        await client.send("POST", f"/queues/{IDLE_QUEUE}/pause")
        await client.send("POST", f"/queues/{PARKED_QUEUE}/pause")
        extra = {"payload": {"task": "record", "extra": True}, "queue": PARKED_QUEUE}
        for _ in range(self.plan.extras):
            answer = await client.send("POST", "/jobs", _encode(extra), expect=(202,))
            if answer.status == 202:
                result.extras += _ids(answer, "job_id")
        answer = await client.send(
            "POST", "/jobs/batch", _encode({"jobs": [extra, extra]}), expect=(202,)
        )
        if answer.status == 202:
            result.extras += _ids(answer, "job_ids")
        extras = sorted(result.extras)
        await self._bulk(client, "cancel", extras, "cancelled", extras)
        await self._bulk(client, "retry", extras, "retried", extras)
        for job_id in extras:
            await client.send("POST", f"/jobs/{job_id}/cancel")
        # Done jobs: a retry is refused, a cancel does nothing.
        done = self.plan.done
        if done:
            await self._bulk(client, "retry", done, "retried", [])
            await self._bulk(client, "cancel", done, "cancelled", [])
        for job_id in done[:3]:
            await client.send("POST", f"/jobs/{job_id}/retry", expect=(409,))
            await client.send("POST", f"/jobs/{job_id}/cancel", expect=(409,))
        await client.send("POST", f"/queues/{PARKED_QUEUE}/resume")
        await client.send("POST", f"/queues/{IDLE_QUEUE}/resume")
        await client.close()

    async def _bulk(
        self, client: Client, verb: str, ids: list[int], key: str, expected: list[int]
    ) -> None:
        answer = await client.send("POST", f"/jobs/{verb}", _encode({"ids": ids}))
        if answer.status == 200:
            got = _ids(answer, key)
            if sorted(got) != sorted(expected):
                self.result.problems.append(
                    f"POST /jobs/{verb} of {len(ids)} job(s) {key} {sorted(got)[:10]}, "
                    f"expected {sorted(expected)[:10]}"
                )


async def _read(client: Client, plan: BurstPlan, writing: _Writing) -> None:
    """Reads of every kind, round-robin, until the writers are done and each kind
    has been read ``reads_per_kind`` times (counted over both readers)."""
    result, done = writing.result, plan.done
    kinds = [
        "/health",
        "/stats",
        "/stats/history",
        "/jobs",
        "/jobs?status=done&page=100",
        "/jobs?status=failed",
        "/jobs?status=running&per_page=200",
        "/jobs?status=available&per_page=200",
        "/jobs?status=scheduled",
        f"/jobs?queue={PARKED_QUEUE}",
        "/jobs?task=record&q=single",
        f"/jobs?q={done[-1] if done else 1}",
        "/jobs/{id}",
        "/queues",
        "/nodes",
        "/cron",
        "/metrics",
    ]
    while not (writing.finished and result.reads >= plan.reads_per_kind * len(kinds)):
        kind = kinds[result.reads % len(kinds)]
        result.reads += 1
        if kind != "/jobs/{id}":
            await client.send("GET", kind)
            continue
        # A job of this burst (queued, running or done by now), or one done before.
        if result.accepted and (result.reads % 2 or not done):
            await client.send("GET", f"/jobs/{result.accepted[-1]}")
        elif done:
            await client.send("GET", f"/jobs/{done[result.reads % len(done)]}")
        else:  # nothing accepted yet: a job that may not exist
            await client.send("GET", "/jobs/1", expect=(200, 404))
    await client.close()


def _ids(answer: Answer, key: str) -> list[int]:
    value = answer.json()
    assert isinstance(value, dict), answer
    found = value[key]
    return [found] if isinstance(found, int) else list(found)
