"""The dashboard over HTTP: sign-in, session cookie, CSRF, rate limiting, headers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from servcore.auth import ApiToken
from tests.acceptance.conftest import Api, OpenApi, assert_json_error

READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"
TOKENS = (ApiToken.make("viewer", "read", token=READ), ApiToken.make("ops", "admin", token=ADMIN))


@pytest.fixture
async def guarded(open_api: OpenApi) -> Api:
    return await open_api(tokens=TOKENS)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/dashboard/login",
        content=f"token={token}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def test_pages_need_a_session_and_carry_security_headers(guarded: Api) -> None:
    client = guarded.client
    page = await client.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"] == "/dashboard/login"
    login = await client.get("/dashboard/login")
    assert login.status_code == 200
    assert "<form" in login.text
    csp = login.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["referrer-policy"] == "no-referrer"
    script = await client.get("/dashboard/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/dashboard/static/secrets.txt")).status_code == 404


async def test_signing_in_gives_a_session_the_api_honours(guarded: Api) -> None:
    client = guarded.client
    bad = await sign_in(client, "not-the-token-at-all")
    assert bad.status_code == 401
    assert "not valid" in bad.text
    response = await sign_in(client, ADMIN)
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("servcore_session="))
    assert "HttpOnly" in session
    assert "SameSite=strict" in session or "SameSite=Strict" in session
    assert "Max-Age=" in session
    assert (await client.get("/dashboard")).status_code == 200
    who = (await client.get("/dashboard/whoami")).json()
    assert who == {"signed_in": True, "guarded": True, "name": "ops", "scope": "admin"}
    assert (await client.get("/stats")).status_code == 200  # the cookie stands in for a token


async def test_changes_through_a_session_need_the_csrf_header(guarded: Api) -> None:
    client = guarded.client
    await sign_in(client, ADMIN)
    refused = await client.post("/queues/default/pause")
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["error"]
    wrong = await client.post("/queues/default/pause", headers={"x-csrf-token": "guess"})
    assert wrong.status_code == 403
    csrf = client.cookies["servcore_csrf"]
    allowed = await client.post("/queues/default/pause", headers={"x-csrf-token": csrf})
    assert allowed.status_code == 200


async def test_a_read_session_cannot_change_anything(guarded: Api) -> None:
    client = guarded.client
    await sign_in(client, READ)
    csrf = client.cookies["servcore_csrf"]
    response = await client.post("/jobs", json={"payload": {}}, headers={"x-csrf-token": csrf})
    assert response.status_code == 403
    assert "needs a write token" in response.json()["error"]


async def test_a_forged_or_tampered_cookie_is_no_session(guarded: Api) -> None:
    client = guarded.client
    await sign_in(client, READ)
    value = client.cookies["servcore_session"]
    payload, signature = value.split(".")
    for forged in (f"{payload}x.{signature}", f"{payload}.{signature[:-2]}AA", "garbage"):
        client.cookies.clear()
        client.cookies.set("servcore_session", forged)
        assert (await client.get("/stats")).status_code == 401, forged
        assert (await client.get("/dashboard")).status_code == 303
    client.cookies.clear()
    client.cookies.set("servcore_session", value)
    assert (await client.get("/stats")).status_code == 200  # the real one still works


async def test_failed_sign_ins_are_rate_limited(guarded: Api) -> None:
    client = guarded.client
    for _ in range(5):
        assert (await sign_in(client, "wrong-token-wrong-token")).status_code == 401
    limited = await sign_in(client, ADMIN)  # even the right one, for a while
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in limited.text


async def test_signing_out(guarded: Api) -> None:
    client = guarded.client
    await sign_in(client, READ)
    assert (await client.post("/dashboard/logout")).status_code == 403  # no CSRF header
    csrf = client.cookies["servcore_csrf"]
    out = await client.post("/dashboard/logout", headers={"x-csrf-token": csrf})
    assert out.status_code == 200
    assert "servcore_session=" in out.headers["set-cookie"]
    client.cookies.clear()
    assert (await client.get("/stats")).status_code == 401


async def test_without_tokens_the_dashboard_is_open(open_api: OpenApi) -> None:
    api = await open_api()
    assert (await api.client.get("/dashboard")).status_code == 200
    assert (await api.client.get("/dashboard/login")).status_code == 303
    who = (await api.client.get("/dashboard/whoami")).json()
    assert who["scope"] == "admin"


async def test_history_counts_the_last_hour(open_api: OpenApi) -> None:
    api = await open_api(workers=True)
    job_id = await api.submit({"task": "x"})
    await api.wait_status(job_id, "done")
    minutes = (await api.client.get("/stats/history")).json()["minutes"]
    assert len(minutes) == 60
    assert sum(m["done"] for m in minutes) == 1
    assert minutes[-1]["at"] < minutes[-1]["at"] + "1"  # ISO text, newest last
    assert minutes[0]["at"] < minutes[-1]["at"]


async def test_history_of_one_queue_and_each_queues_rate(open_api: OpenApi) -> None:
    api = await open_api(workers=True, queues=["default", "mail"])
    jobs = [await api.submit({"task": "x"}, queue=queue) for queue in ("mail", "mail", "default")]
    for job_id in jobs:
        await api.wait_status(job_id, "done")

    mail = (await api.client.get("/stats/history?queue=mail")).json()
    assert sum(m["done"] for m in mail["minutes"]) == 2
    everything = (await api.client.get("/stats/history")).json()
    assert sum(m["done"] for m in everything["minutes"]) == 3
    # Rates over the last 5 minutes: 2 jobs are 0.4 a minute.
    assert everything["rate_minutes"] == 5
    assert everything["queues"] == {
        "default": {"done_per_minute": 0.2, "failed_per_minute": 0.0},
        "mail": {"done_per_minute": 0.4, "failed_per_minute": 0.0},
    }
    nowhere = (await api.client.get("/stats/history?queue=nowhere")).json()
    assert sum(m["done"] for m in nowhere["minutes"]) == 0
    assert_json_error(await api.client.get("/stats/history?queue=a/b"), 400, "queue name")


async def test_signing_out_ends_the_session_even_if_its_cookie_is_kept(guarded: Api) -> None:
    client = guarded.client
    await sign_in(client, ADMIN)
    kept = client.cookies["servcore_session"]
    csrf = client.cookies["servcore_csrf"]
    await client.post("/dashboard/logout", headers={"x-csrf-token": csrf})
    client.cookies.clear()
    client.cookies.set("servcore_session", kept)
    assert (await client.get("/stats")).status_code == 401


async def test_a_session_ends_with_its_token_and_follows_its_scope(open_api: OpenApi) -> None:
    api = await open_api(tokens=TOKENS)
    await sign_in(api.client, ADMIN)
    assert (await api.client.get("/stats")).status_code == 200
    api.service.config = api.service.config.with_overrides(tokens=TOKENS[:1])  # admin revoked
    assert (await api.client.get("/stats")).status_code == 401


async def test_a_huge_sign_in_body_is_refused_unread(guarded: Api) -> None:
    response = await guarded.client.post(
        "/dashboard/login",
        content=b"token=" + b"x" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def preloaded(page: str) -> dict[str, Any]:
    """The answers the dashboard page carries for its first paint."""
    found = re.search(r'<script type="application/json" id="preload">(.*?)</script>', page, re.S)
    assert found is not None, page
    answers: dict[str, Any] = json.loads(found.group(1))
    return answers


async def test_the_page_carries_the_overviews_first_answers(open_api: OpenApi) -> None:
    api = await open_api(workers=True)
    await api.wait_status(await api.submit({"task": "x"}), "done")
    answers = preloaded((await api.client.get("/dashboard")).text)
    assert set(answers) == {"/dashboard/whoami", "/stats", "/queues", "/nodes", "/stats/history"}
    assert answers["/stats"] == (await api.client.get("/stats")).json()
    assert answers["/queues"] == (await api.client.get("/queues")).json()
    assert answers["/dashboard/whoami"] == (await api.client.get("/dashboard/whoami")).json()
    assert sum(minute["done"] for minute in answers["/stats/history"]["minutes"]) == 1
    # The page's own query string does not reach the answers.
    assert preloaded((await api.client.get("/dashboard?queue=a/b")).text)["/stats/history"]


async def test_text_in_the_carried_answers_cannot_end_their_script(open_api: OpenApi) -> None:
    token = "a-token-for-a-hostile-name-0123"
    named = ApiToken.make("</script><script>alert(1)</script>", "admin", token=token)
    api = await open_api(tokens=(named,))
    await sign_in(api.client, token)
    page = (await api.client.get("/dashboard")).text
    assert "<script>alert(1)" not in page
    assert preloaded(page)["/dashboard/whoami"]["name"] == named.name
