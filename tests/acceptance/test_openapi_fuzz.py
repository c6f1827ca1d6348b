"""``/openapi.json`` tells the truth: requests generated from it are never refused.

For every operation the document lists, Hypothesis (through
``hypothesis-jsonschema``) generates path, query and header parameters and
bodies from the operation's own schemas, and the test sends them to the app
on each backend. Whatever the schema allows, the server must take: no 5xx
ever, and no 4xx except the answers that depend on the state of the store and
say so in the document (an unknown id, a job in the wrong state, a
``unique_key`` already used with another payload). Derandomised, so each run
sends the same requests.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from servcore import Service, create_app
from servcore.http.routes import openapi_document
from servcore.job_reads import EXACT_COUNT_CAP
from tests.acceptance.conftest import client_for
from tests.conftest import fast_config, make_store

EXAMPLES_PER_OPERATION = 30
# The 4xx answers that depend on what the store holds, not on the request's shape.
STATE_DEPENDENT = {
    ("get", "/jobs/{id}"): {404},
    ("post", "/jobs/{id}/cancel"): {404, 409},
    ("post", "/jobs/{id}/retry"): {404, 409},
    ("post", "/jobs"): {409},
    ("post", "/jobs/schedule"): {409},
}


def _operations() -> Iterator[tuple[str, str]]:
    for path, methods in openapi_document()["paths"].items():
        for method in methods:
            yield method, path


def _inline(node: Any, schemas: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` to a component replaced by the component."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {key: _inline(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, schemas) for item in node]
    return node


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@functools.cache
def _strategies(method: str, path: str) -> tuple[list[Parameter], st.SearchStrategy[Any] | None]:
    """Each parameter of the operation with its strategy, and the body's (built once)."""
    document = openapi_document()
    operation = _inline(document["paths"][path][method], document["components"]["schemas"])
    parameters = [
        Parameter(p["name"], p["in"], p.get("required", False), from_schema(p["schema"]))
        for p in operation.get("parameters", [])
    ]
    body = None
    if "requestBody" in operation:
        body = from_schema(operation["requestBody"]["content"]["application/json"]["schema"])
    return parameters, body


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # path, query or header
    required: bool
    values: st.SearchStrategy[Any]


@st.composite
def _requests(draw: st.DrawFn, method: str, path: str, ids: list[int]) -> httpx.Request:
    """One request for the operation, every part drawn from its schema."""
    parameters, body = _strategies(method, path)
    url, query, headers = path, {}, {}
    for parameter in parameters:
        values = parameter.values
        if parameter.name == "id":
            values = values | st.sampled_from(ids)  # known jobs too, not only 404s
        if parameter.name == "wait":
            # The jobs here stay queued: any wait the schema allows holds the
            # request that long. Its shapes, not its length, are what is tried.
            values = values.filter(lambda seconds: seconds <= 0.01)
        if parameter.required or draw(st.booleans()):
            value = _text(draw(values))
            if parameter.where == "path":
                quoted = httpx.URL(value).raw_path.decode()
                url = url.replace("{" + parameter.name + "}", quoted)
            elif parameter.where == "query":
                query[parameter.name] = value
            else:
                headers[parameter.name] = value
    content = None
    if body is not None:
        content = json.dumps(draw(body)).encode()
        headers["content-type"] = "application/json"
    return httpx.Request(
        method.upper(), "http://127.0.0.1" + url, params=query, headers=headers, content=content
    )


def _documented_refusal(request: httpx.Request) -> bool:
    """A rule between two parts that no one schema can say: ``Idempotency-Key``
    and a body's ``unique_key``, when both are given, must be the same; page
    numbers reach the first EXACT_COUNT_CAP jobs of a listing."""
    page = int(request.url.params.get("page") or 1)
    if page * int(request.url.params.get("per_page") or 50) > EXACT_COUNT_CAP:
        return True
    key = request.headers.get("idempotency-key")
    if key is None or not request.content:
        return False
    given = json.loads(request.content).get("unique_key")
    return given is not None and given != key


@pytest.mark.parametrize(("method", "path"), list(_operations()))
def test_what_the_schema_allows_the_server_takes(
    backend: str, tmp_path: Path, method: str, path: str
) -> None:
    with asyncio.Runner() as runner:
        service = Service(make_store(backend, tmp_path), config=fast_config())
        runner.run(service.start(workers=False))
        client = client_for(create_app(service, manage_service=False))
        try:
            ids = runner.run(_some_jobs(client))
            allowed = STATE_DEPENDENT.get((method, path), set())

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(_requests(method, path, ids))
            def server_takes(request: httpx.Request) -> None:
                response = runner.run(client.send(request))
                if response.status_code == 400 and _documented_refusal(request):
                    return
                refused = response.status_code >= 400 and response.status_code not in allowed
                assert not refused, (
                    request.method,
                    str(request.url),
                    request.content,
                    response.text,
                )

            server_takes()
        finally:
            runner.run(client.aclose())
            runner.run(service.stop(grace=0))


async def _some_jobs(client: httpx.AsyncClient) -> list[int]:
    """A queued, a cancelled and a scheduled job, so id routes meet real jobs."""
    ids = []
    for body in ({"payload": {}}, {"payload": {}}, {"payload": {}, "delay": 3600}):
        response = await client.post("/jobs", json=body)
        ids.append(response.json()["job_id"])
    await client.post(f"/jobs/{ids[1]}/cancel")
    return ids
