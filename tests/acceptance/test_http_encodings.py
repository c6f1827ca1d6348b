"""Request bodies with a Content-Encoding: gzip is inflated under the body limit
(which applies to the inflated size, read as it arrives); any other is 415."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from tests.acceptance.conftest import Api, assert_json_error

MIB = 1024 * 1024
GZIP = {"content-type": "application/json", "content-encoding": "gzip"}


@pytest.fixture
def backend() -> str:
    return "memory"  # nothing here depends on the store


def gzip_bomb(inflated: int) -> bytes:
    """A gzip member of ``inflated`` zero bytes (about a thousandth of that compressed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(inflated // MIB)]
    return b"".join([*parts, compressor.flush()])


@pytest.mark.parametrize("path", ["/jobs", "/jobs/schedule"])
async def test_a_gzip_body_is_inflated(api: Api, path: str) -> None:
    # /jobs is answered on the ASGI path, /jobs/schedule by Starlette: both inflate.
    body = b'{"payload": {"task": "report", "n": 7}, "run_at": "2030-01-01T00:00:00Z"}'
    response = await api.client.post(path, content=gzip.compress(body), headers=GZIP)
    assert response.status_code == 202, response.text
    job = await api.job(response.json()["job_id"])
    assert job["payload"] == {"task": "report", "n": 7}


async def test_several_gzip_members_are_one_body(api: Api) -> None:
    body = gzip.compress(b'{"payload": ') + gzip.compress(b'{"n": 1}}')
    response = await api.client.post("/jobs", content=body, headers=GZIP)
    assert response.status_code == 202, response.text


async def test_the_limit_applies_to_the_inflated_size(api: Api) -> None:
    document = b'{"payload": {"pad": "' + b"x" * MIB + b'"}}'
    compressed = gzip.compress(document)
    assert len(compressed) < 64 * 1024
    response = await api.client.post("/jobs", content=compressed, headers=GZIP)
    assert_json_error(response, 413, "larger than the limit")
    assert (await api.stats())["total"] == 0


async def test_a_gzip_bomb_is_413_without_inflating_it_in_memory(api: Api) -> None:
    bomb = gzip_bomb(256 * MIB)
    tracemalloc.start()
    try:
        response = await api.client.post("/jobs", content=bomb, headers=GZIP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_json_error(response, 413, "larger than the limit")
    # The bomb itself is ~256 KiB; inflating it whole would take 256 MiB.
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("path", ["/jobs", "/jobs/batch"])
@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd", "gzip, br"])
async def test_other_encodings_are_415(api: Api, path: str, encoding: str) -> None:
    headers = {"content-type": "application/json", "content-encoding": encoding}
    response = await api.client.post(path, content=b'{"payload": {}}', headers=headers)
    assert_json_error(response, 415, "Content-Encoding", "not supported")
    assert (await api.stats())["total"] == 0


async def test_identity_is_no_encoding(api: Api) -> None:
    headers = {"content-type": "application/json", "content-encoding": "identity"}
    response = await api.client.post("/jobs", content=b'{"payload": {}}', headers=headers)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"payload": {}}', id="not-gzip"),
        pytest.param(gzip.compress(b'{"payload": {}}')[:-6], id="truncated"),
    ],
)
async def test_a_broken_gzip_body_is_400(api: Api, body: bytes) -> None:
    response = await api.client.post("/jobs", content=body, headers=GZIP)
    assert_json_error(response, 400, "not valid gzip")
