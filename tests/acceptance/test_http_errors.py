"""Bad input gets a 4xx with a JSON ``error`` that says what to fix; never a 500, never a job."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.acceptance.conftest import Api, OpenApi, assert_json_error

JSON_HEADERS = {"content-type": "application/json"}
MISSING_PAYLOAD = {"error": "Missing 'payload' field"}
MIB = 1024 * 1024


async def post_raw(api: Api, body: bytes, path: str = "/jobs") -> Any:
    return await api.client.post(path, content=body, headers=JSON_HEADERS)


def case(fields: dict[str, Any], *fragments: str) -> Any:
    """One bad request: the fields added to a good body, and what the error must name."""
    return pytest.param(fields, list(fragments), id=json.dumps(fields)[:50])


async def assert_nothing_stored(api: Api) -> None:
    assert (await api.stats())["total"] == 0


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(b"{", ["Malformed JSON"], id="truncated"),
        pytest.param(b'{"payload": {}', ["Malformed JSON"], id="unclosed"),
        pytest.param(b"{'payload': {}}", ["Malformed JSON"], id="single-quotes"),
        pytest.param(b'{"payload": {}} extra', ["Malformed JSON"], id="trailing"),
        pytest.param(b"NaN", ["Malformed JSON"], id="nan"),
        pytest.param(b"", ["empty"], id="empty"),
        pytest.param(b"  \n ", ["empty"], id="whitespace"),
        pytest.param(b"[]", ["JSON object", "array"], id="array"),
        pytest.param(b'[{"payload": {}}]', ["JSON object", "array"], id="array-of-jobs"),
        pytest.param(b'"payload"', ["JSON object", "string"], id="string"),
        pytest.param(b"42", ["JSON object", "number"], id="number"),
        pytest.param(b"true", ["JSON object", "boolean"], id="boolean"),
        pytest.param(b"null", ["JSON object", "null"], id="null"),
        pytest.param(b'{"payload": {"s": "\xff"}}', [], id="invalid-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, [], id="deeply-nested-array"),
        pytest.param(
            b'{"payload": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
            [],
            id="deeply-nested-payload",
        ),
    ],
)
async def test_unreadable_bodies_are_400(api: Api, body: bytes, fragments: list[str]) -> None:
    assert_json_error(await post_raw(api, body), 400, *fragments)
    assert_json_error(await post_raw(api, body, "/jobs/schedule"), 400, *fragments)
    await assert_nothing_stored(api)


@pytest.mark.parametrize("body", [b"{}", b'{"max_attempts": 3}', b'{"queue": "email"}'])
async def test_missing_payload_is_the_seed_error_exactly(api: Api, body: bytes) -> None:
    response = await post_raw(api, body)
    assert response.status_code == 400
    assert response.json() == MISSING_PAYLOAD
    await assert_nothing_stored(api)


async def test_missing_payload_bytes_match_the_seed(api: Api) -> None:
    response = await post_raw(api, b"{}")
    assert response.content == b'{"error":"Missing \'payload\' field"}'


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        # payload of the wrong type
        case({"payload": "x"}, "payload", "object", "string"),
        case({"payload": [1, 2]}, "payload", "object", "array"),
        case({"payload": 7}, "payload", "object", "number"),
        case({"payload": None}, "payload", "object", "null"),
        case({"payload": True}, "payload", "object", "boolean"),
        # optional fields of the wrong type
        case({"max_attempts": "5"}, "max_attempts", "integer", "string"),
        case({"max_attempts": 2.5}, "max_attempts", "integer"),
        case({"max_attempts": True}, "max_attempts", "integer", "boolean"),
        case({"priority": True}, "priority", "integer", "boolean"),
        case({"priority": "1"}, "priority", "integer", "string"),
        case({"priority": 1.5}, "priority", "integer"),
        case({"queue": 5}, "queue", "string"),
        case({"queue": ["email"]}, "queue", "string", "array"),
        case({"run_at": 4102444800}, "run_at", "string", "number"),
        case({"run_at": {"at": "now"}}, "run_at", "string", "object"),
        case({"delay": "10"}, "delay", "number", "string"),
        case({"delay": False}, "delay", "number", "boolean"),
        case({"timeout": "1"}, "timeout", "number", "string"),
        case({"backoff": "x"}, "backoff", "number", "string"),
        case({"unique_key": 5}, "unique_key", "string", "number"),
        # out of range
        case({"max_attempts": 0}, "max_attempts"),
        case({"max_attempts": -1}, "max_attempts"),
        case({"max_attempts": 1001}, "max_attempts"),
        case({"max_attempts": 10**30}, "max_attempts"),
        case({"priority": 10}, "priority"),
        case({"priority": -1}, "priority"),
        case({"priority": 10**30}, "priority"),
        case({"delay": -1}, "delay"),
        case({"delay": -0.001}, "delay"),
        case({"delay": 10**30}, "delay"),
        case({"timeout": 0}, "timeout"),
        case({"timeout": -5}, "timeout"),
        case({"timeout": 10**30}, "timeout"),
        case({"backoff": -1}, "backoff"),
        case({"unique_key": ""}, "unique_key"),
        case({"unique_key": "k" * 256}, "unique_key"),
        case({"queue": ""}, "queue"),
        case({"queue": "bad queue!"}, "queue"),
        case({"queue": "q" * 101}, "queue"),
        # times
        case({"run_at": "tomorrow"}, "run_at"),
        case({"run_at": ""}, "run_at"),
        case({"run_at": "2999-02-30T00:00:00Z"}, "run_at"),
        case({"run_at": "2999-01-01T00:00:00"}, "run_at", "time zone"),
        case({"run_at": "2999-01-01"}, "run_at", "time zone"),
        case({"run_at": "2999-01-01T00:00:00+25:00"}, "run_at"),
        case({"run_at": "9999-12-31T23:59:59-01:00"}, "run_at"),
        case({"run_at": "0001-01-01T00:00:00+01:00"}, "run_at"),
        case({"run_at": "2999-01-01T00:00:00Z", "delay": 5}, "run_at", "delay"),
        # fields nobody asked for
        case({"colour": "red"}, "colour"),
        case({"payload_": {}}, "payload_"),
        case({"Priority": 1}, "Priority"),
    ],
)
async def test_bad_fields_are_400_naming_the_problem(
    api: Api, fields: dict[str, Any], fragments: list[str]
) -> None:
    body = {"payload": {"task": "x"}, **fields}
    response = await api.client.post("/jobs", json=body)
    assert_json_error(response, 400, *fragments)
    await assert_nothing_stored(api)


async def test_huge_number_literal_is_400(api: Api) -> None:
    response = await post_raw(api, b'{"payload": {}, "delay": 1e400}')
    assert_json_error(response, 400, "out of range")
    await assert_nothing_stored(api)


async def test_extreme_but_valid_values_are_accepted(api: Api) -> None:
    edges: list[dict[str, Any]] = [
        {"max_attempts": 1},
        {"max_attempts": 1000},
        {"priority": 0},
        {"priority": 9},
        {"delay": 0},
        {"delay": 0.5},
        {"timeout": 0.001},
        {"unique_key": "k" * 255},
        {"queue": "a.b-c_d"},
        {"run_at": "2000-01-01T00:00:00Z"},
    ]
    for fields in edges:
        response = await api.client.post("/jobs", json={"payload": {}, **fields})
        assert response.status_code == 202, (fields, response.text)
    assert (await api.stats())["total"] == len(edges)


# -- body size ---------------------------------------------------------------


def body_of_size(size: int) -> bytes:
    """A valid job request of exactly ``size`` bytes."""
    empty = json.dumps({"payload": {"pad": ""}}).encode()
    body = json.dumps({"payload": {"pad": "x" * (size - len(empty))}}).encode()
    assert len(body) == size
    return body


async def test_body_at_the_default_limit_is_accepted(api: Api) -> None:
    assert (await post_raw(api, body_of_size(MIB))).status_code == 202


async def test_body_over_the_default_limit_is_413(api: Api) -> None:
    response = await post_raw(api, body_of_size(MIB + 1))
    assert_json_error(response, 413, str(MIB))
    await assert_nothing_stored(api)


async def test_small_limit_is_enforced(open_api: OpenApi) -> None:
    api = await open_api(max_body_bytes=2048)
    assert (await post_raw(api, body_of_size(2048))).status_code == 202
    for path in ("/jobs", "/jobs/schedule"):
        assert_json_error(await post_raw(api, body_of_size(2049), path), 413, "2048")
    assert (await api.stats())["total"] == 1


async def test_limit_holds_without_content_length(open_api: OpenApi) -> None:
    api = await open_api(max_body_bytes=2048)
    body = body_of_size(4096)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = await api.client.post("/jobs", content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert_json_error(response, 413, "2048")
    await assert_nothing_stored(api)


async def test_lying_content_length_header_is_not_trusted(open_api: OpenApi) -> None:
    api = await open_api(max_body_bytes=2048)
    body = body_of_size(4096)
    headers = {**JSON_HEADERS, "content-length": "10"}
    response = await api.client.post("/jobs", content=body, headers=headers)
    assert 400 <= response.status_code < 500
    await assert_nothing_stored(api)


# -- ids, routes, methods ------------------------------------------------------


@pytest.mark.parametrize(
    "job_id", ["abc", "0", "-1", "99999999999999999999999", "1.5", "1e3", "%20", "\uff11"]
)
async def test_bad_job_ids_are_400(api: Api, job_id: str) -> None:
    await api.submit()
    assert_json_error(await api.client.get(f"/jobs/{job_id}"), 400, "job id")


async def test_unknown_job_is_404_exactly(api: Api) -> None:
    await api.submit()
    for job_id in (2, 12345, 2**63 - 1):
        response = await api.client.get(f"/jobs/{job_id}")
        assert response.status_code == 404
        assert response.content == b'{"error":"Job not found"}'


@pytest.mark.parametrize("path", ["/nope", "/jobs/1/extra", "/job", "/stats/x"])
async def test_unknown_route_is_404_json(api: Api, path: str) -> None:
    assert_json_error(await api.client.get(path), 404)
    assert_json_error(await api.client.post(path, json={"payload": {}}), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/jobs/1", {"GET", "HEAD"}),
        ("POST", "/jobs/1", {"GET", "HEAD"}),
        ("POST", "/health", {"GET", "HEAD"}),
        ("PUT", "/stats", {"GET", "HEAD"}),
        ("DELETE", "/", {"GET", "HEAD"}),
        ("PATCH", "/jobs/schedule", {"POST"}),
        ("PUT", "/jobs", {"GET", "HEAD", "POST"}),
    ],
)
async def test_wrong_method_is_405_json_with_allow(
    api: Api, method: str, path: str, allowed: set[str]
) -> None:
    await api.submit()
    response = await api.client.request(method, path, json={"payload": {}})
    assert_json_error(response, 405)
    assert {part.strip() for part in response.headers["allow"].split(",")} == allowed


async def test_nul_characters_in_text_fields_are_400(api: Api) -> None:
    for body in (
        {"payload": {"task": "a\u0000b"}},
        {"payload": {"task": "x"}, "unique_key": "k\u0000"},
    ):
        response = await api.client.post("/jobs", json=body)
        assert_json_error(response, 400, "NUL")
    assert_json_error(await api.client.get("/jobs?queue=a%00b"), 400, "NUL")
