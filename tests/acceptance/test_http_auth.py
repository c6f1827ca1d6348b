"""Access control: every route answers 401 without a token and 403 with too small a scope."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from servcore import Pipeline
from servcore.auth import ApiToken, tokens_from_env
from servcore.http.routes import openapi_document
from tests.acceptance.conftest import OpenApi, client_for

READ, WRITE, ADMIN = "read-token-0123456789", "write-token-0123456789", "admin-token-0123456789"
TOKENS = (
    ApiToken.make("grafana", "read", token=READ),
    ApiToken.make("ci", "write", token=WRITE),
    # Stored hashed: the clear text is nowhere in the configuration.
    ApiToken.make("ops", "admin", sha256=hashlib.sha256(ADMIN.encode()).hexdigest()),
)
README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN_ROUTES = {"/queues/{name}/pause", "/queues/{name}/resume"}
PUBLIC = {("GET", "/"), ("GET", "/health")}


def every_route() -> list[tuple[str, str, str]]:
    """(method, path, scope it needs) for every route the OpenAPI document lists."""
    routes = []
    for template, operations in openapi_document()["paths"].items():
        path = template.replace("{id}", "1").replace("{name}", "default")
        for method in operations:
            if (method.upper(), path) in PUBLIC:
                continue
            scope = "read" if method == "get" else "write"
            if template in ADMIN_ROUTES:
                scope = "admin"
            routes.append((method.upper(), path, scope))
    return routes


ROUTES = every_route()


@pytest.fixture
async def guarded(open_api: OpenApi) -> httpx.AsyncClient:
    api = await open_api(tokens=TOKENS)
    return api.client


def as_(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def call(
    client: httpx.AsyncClient, method: str, path: str, token: str | None
) -> httpx.Response:
    body = {"payload": {"task": "x"}} if method == "POST" else None
    if path.endswith("/batch"):
        body = {"jobs": [{"payload": {}}]}
    headers = as_(token) if token else {}
    return await client.request(method, path, json=body, headers=headers)


def test_the_route_list_covers_reads_writes_and_admin() -> None:
    scopes = {scope for _, _, scope in ROUTES}
    assert scopes == {"read", "write", "admin"}
    assert len(ROUTES) >= 15
    assert ("GET", "/cron", "read") in ROUTES


async def test_every_route_wants_a_token(guarded: httpx.AsyncClient) -> None:
    for method, path, _ in ROUTES:
        response = await call(guarded, method, path, None)
        assert response.status_code == 401, (method, path, response.text)
        assert "Bearer" in response.json()["error"]
        assert response.headers["www-authenticate"] == 'Bearer realm="servcore"'
    for method, path, _ in ROUTES[:4]:  # more than a few: the guesses are rate limited
        wrong = await call(guarded, method, path, "not-a-real-token-at-all")
        assert wrong.status_code == 401, (method, path)
        assert wrong.json()["error"] == "Invalid token"


async def test_too_small_a_scope_is_403_and_enough_is_let_through(
    guarded: httpx.AsyncClient,
) -> None:
    by_scope = {"read": READ, "write": WRITE, "admin": ADMIN}
    order = ["read", "write", "admin"]
    for method, path, needed in ROUTES:
        for scope in order:
            response = await call(guarded, method, path, by_scope[scope])
            if order.index(scope) < order.index(needed):
                assert response.status_code == 403, (scope, method, path, response.text)
                assert f"needs a {needed} token" in response.json()["error"]
            else:
                assert response.status_code not in (401, 403), (scope, method, path)


async def test_a_read_token_changes_nothing(guarded: httpx.AsyncClient) -> None:
    created = await guarded.post("/jobs", json={"payload": {}}, headers=as_(WRITE))
    job_id = created.json()["job_id"]
    for method, path in [
        ("POST", "/jobs"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("POST", "/queues/default/pause"),
        ("POST", "/jobs/batch"),
    ]:
        assert (await call(guarded, method, path, READ)).status_code == 403
    stats = (await guarded.get("/stats", headers=as_(READ))).json()
    assert stats["queued"] == 1
    job = (await guarded.get(f"/jobs/{job_id}", headers=as_(READ))).json()
    assert job["status"] == "queued"
    queues = (await guarded.get("/queues", headers=as_(READ))).json()
    assert not any(queue["paused"] for queue in queues)


async def test_health_and_metrics_can_be_public(open_api: OpenApi) -> None:
    api = await open_api(tokens=TOKENS, public_metrics=True)
    assert (await api.client.get("/health")).status_code == 200
    assert (await api.client.get("/metrics")).status_code == 200
    closed = await open_api(tokens=TOKENS, public_health=False)
    assert (await closed.client.get("/health")).status_code == 401
    assert (await closed.client.get("/metrics")).status_code == 401
    assert (await closed.client.get("/health", headers=as_(READ))).status_code == 200


async def test_without_tokens_everything_stays_open(open_api: OpenApi) -> None:
    api = await open_api()
    assert (await api.client.post("/queues/default/pause")).status_code == 200


async def test_pipeline_routes_are_guarded_too(open_api: OpenApi) -> None:
    api = await open_api(
        tokens=TOKENS, declare=lambda s: s.add_pipeline(Pipeline("email", routes="/email_jobs"))
    )
    job = {"payload": {}}
    assert (await api.client.get("/email_jobs")).status_code == 401
    assert (await api.client.post("/email_jobs", json=job, headers=as_(READ))).status_code == 403
    assert (await api.client.post("/email_jobs", json=job, headers=as_(WRITE))).status_code == 202


async def test_a_browser_cannot_be_made_to_change_things_from_another_site(
    open_api: OpenApi,
) -> None:
    api = await open_api()  # no tokens: the API is open, to this machine
    attacks = [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # another port on localhost is another origin
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:3000"},
    ]
    for headers in attacks:
        for path in ("/queues/default/pause", "/jobs"):
            response = await api.client.post(
                path, content='{"payload": {}}', headers={**headers, "content-type": "text/plain"}
            )
            assert response.status_code == 403, (headers, path)
            assert "another" in response.json()["error"]
    assert not (await api.client.get("/queues")).json()  # nothing was created or paused
    same = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
    assert (await api.client.post("/jobs", json={"payload": {}}, headers=same)).status_code == 202
    assert (await api.client.post("/jobs", json={"payload": {}})).status_code == 202  # curl
    reading = await api.client.get("/stats", headers={"sec-fetch-site": "cross-site"})
    assert reading.status_code == 200  # reads change nothing (and CORS keeps their answers)


async def test_an_open_service_answers_only_to_its_loopback_name(open_api: OpenApi) -> None:
    api = await open_api()  # no tokens
    rebound = await api.client.get("/stats", headers={"host": "evil.example:4000"})
    assert rebound.status_code == 403
    assert "loopback" in rebound.json()["error"]
    for host in ("127.0.0.1:4000", "localhost", "[::1]:4000"):
        assert (await api.client.get("/stats", headers={"host": host})).status_code == 200
    opened = await open_api(allow_open=True)
    assert (await opened.client.get("/stats", headers={"host": "jobs.example"})).status_code == 200
    guarded = await open_api(tokens=TOKENS)
    named = await guarded.client.get(
        "/stats", headers={"host": "jobs.example", "authorization": f"Bearer {READ}"}
    )
    assert named.status_code == 200  # with tokens, the token is the guard


async def test_guessing_bearer_tokens_is_rate_limited(guarded: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (
            await guarded.get("/stats", headers=as_("wrong-token-guess-000"))
        ).status_code == 401
    limited = await guarded.get("/stats", headers=as_(READ))
    assert limited.status_code == 429
    assert "Too many invalid tokens" in limited.json()["error"]


def test_pipelines_cannot_take_the_service_s_own_paths() -> None:
    from servcore.errors import ConfigError

    for taken in ("/dashboard_jobs", "/dashboard", "/metrics", "/jobs2"):
        with pytest.raises(ConfigError, match="would shadow"):
            Pipeline("email", routes=taken)


async def test_routes_mounted_one_by_one_are_guarded_by_gated(open_api: OpenApi) -> None:
    from starlette.applications import Starlette

    from servcore import job_routes
    from servcore.http.gate import gated

    api = await open_api(tokens=TOKENS)
    own = gated(
        Starlette(routes=job_routes(api.service, "/email_jobs", queue="email")), api.service
    )
    async with client_for(own) as client:
        assert (await client.get("/email_jobs")).status_code == 401
        assert (await client.get("/email_jobs", headers=as_(READ))).status_code == 200
        denied = await client.post("/email_jobs", json={"payload": {}}, headers=as_(READ))
        assert denied.status_code == 403


async def test_the_readme_s_access_control_answers_with_its_named_tokens(
    open_api: OpenApi,
) -> None:
    """As the README's ``SERVCORE_TOKENS="admin:…,grafana=read:…"`` sets them up."""
    readme = README.read_text()
    assert "grafana=read:<grafana's>\"" in readme
    shown = dict(re.findall(r"`(40[13]) (\{.*?\})`", readme))
    api = await open_api(tokens=tokens_from_env(f"admin:{ADMIN},grafana=read:{READ}"))
    anonymous = await api.client.post("/jobs", json={"payload": {}})
    assert (anonymous.status_code, anonymous.text) == (401, shown["401"])
    grafana = await api.client.post(
        "/jobs", json={"payload": {}}, headers={"Authorization": f"Bearer {READ}"}
    )
    assert (grafana.status_code, grafana.text) == (403, shown["403"])
