"""A TCP proxy in front of PostgreSQL that can lose a commit's reply.

Once armed, the next connection that sends a query lets PostgreSQL run it
to the end of its transaction (the server says so with a ReadyForQuery
message whose status is idle) and is then closed without passing that
reply on: the client lost its connection after the commit happened, the
one outcome a client cannot tell from a failure.
"""

from __future__ import annotations

import asyncio
import contextlib

# Frontend messages that carry a query (the startup packet starts with its length).
_QUERY_MESSAGES = (b"Q", b"P", b"B")
# ReadyForQuery (``Z``, length 5) with status ``I``: no transaction open any more.
_IDLE_AGAIN = b"Z\x00\x00\x00\x05I"


class CommitReplyDropper:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._armed = False
        self._doomed: asyncio.StreamWriter | None = None
        self.dropped = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen on a free loopback port; that port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def arm(self) -> None:
        """Drop the reply that ends the next query's transaction."""
        self._armed = True
        self.dropped.clear()

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(
                self._pump(client_r, server_w, client_w, upstream=True),
                self._pump(server_r, client_w, client_w, upstream=False),
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if upstream and self._armed and chunk[:1] in _QUERY_MESSAGES:
                    self._armed = False
                    self._doomed = client
                elif not upstream and self._doomed is client and _IDLE_AGAIN in chunk:
                    self._doomed = None
                    client.transport.abort()  # the reply never arrives
                    self.dropped.set()
                    return
                writer.write(chunk)
                await writer.drain()
        writer.close()
