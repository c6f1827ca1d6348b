"""Reading a request body within the size limit, decoded as its Content-Encoding says.

A ``gzip`` body is inflated as it arrives and the limit applies to what it
inflates to, so a small compressed body that would inflate to gigabytes (a
gzip bomb) is refused with 413 once it passes the limit, holding at most the
limit in memory. Any other encoding is refused with 415 before the body is read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Protocol

from starlette.requests import Request

from servcore.http.validation import BadRequest, check_declared_length, too_large

_GZIP = frozenset({"gzip", "x-gzip"})
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around deflate


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a Starlette request (the ASGI path reads its own the same way)."""
    reader = body_reader(request.headers.raw, limit)
    async for chunk in request.stream():
        reader.add(chunk)
    return reader.result()


class BodyReader(Protocol):
    def add(self, chunk: bytes) -> None:
        """Take the next chunk as it came; BadRequest if the body cannot be taken."""

    def result(self) -> bytes:
        """The whole body, decoded; BadRequest if it ended where it may not."""


def body_reader(headers: Iterable[tuple[bytes, bytes]], limit: int) -> BodyReader:
    """A reader for the body that comes with ``headers`` (raw, names lower case)."""
    declared: bytes | None = None
    codings: list[str] = []
    for name, value in headers:
        if name == b"content-length":
            declared = value
        elif name == b"content-encoding":
            text = value.decode("latin-1").lower()
            codings += [coding.strip() for coding in text.split(",") if coding.strip()]
    codings = [coding for coding in codings if coding != "identity"]
    if not codings:
        if declared is not None:
            check_declared_length(declared.decode("latin-1"), limit)
        return _Plain(limit)
    if len(codings) == 1 and codings[0] in _GZIP:
        return _Gunzip(limit)
    raise BadRequest(
        f"Content-Encoding {', '.join(codings)!r} is not supported: send the body "
        "as it is or gzip-compressed",
        415,
    )


class _Plain:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise BadRequest(too_large(self._limit), 413)
        self._chunks.append(chunk)

    def result(self) -> bytes:
        return b"".join(self._chunks)


class _Gunzip:
    """Inflates gzip members one after the other (a gzip file may hold several)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflate = zlib.decompressobj(_GZIP_WBITS)
        self._out = _Plain(limit)
        self._received = False

    def add(self, chunk: bytes) -> None:
        self._received = self._received or bool(chunk)
        data = chunk
        try:
            while data:
                # Never more than one byte past the limit at a time: that byte says 413.
                room = self._limit + 1 - self._out.size
                self._out.add(self._inflate.decompress(data, room))
                if self._inflate.eof:
                    data = self._inflate.unused_data
                    if data:
                        self._inflate = zlib.decompressobj(_GZIP_WBITS)
                else:
                    data = self._inflate.unconsumed_tail
        except zlib.error as error:
            raise BadRequest(f"Request body is not valid gzip: {error}") from None

    def result(self) -> bytes:
        if self._received and not self._inflate.eof:
            raise BadRequest("Request body is not valid gzip: it ends before its last member")
        return self._out.result()
