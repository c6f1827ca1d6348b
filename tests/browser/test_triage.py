"""Daily triage in a real browser: a job's attempts and timeline, errors and
durations in the list, acting on every job a filter matches, the cron and
queue pages, task suggestions, focus, and a page complete at its first paint."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, expect

from servcore.store import SqliteStore
from tests.browser.conftest import (
    ADMIN,
    ARTIFACTS,
    TOKENS,
    chromium_path,
    dashboard_server,
    screenshot,
    signed_in,
)
from tests.conftest import wait_for
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow

DURATION = re.compile(r"^\d+(\.\d+)? (ms|s)$|^\d+ min \d\d s$")


async def submit(api: httpx.AsyncClient, body: dict[str, Any]) -> int:
    response = await api.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: int = response.json()["job_id"]
    return job_id


async def job_of(api: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = (await api.get(f"/jobs/{job_id}")).json()
    return job


async def until(api: httpx.AsyncClient, job_id: int, status: str, errors: int = 0) -> None:
    async def reached() -> bool:
        job = await job_of(api, job_id)
        return bool(job["status"] == status and len(job["errors"]) >= errors)

    await wait_for(reached, within=30, message=f"job {job_id} to be {status}")


def posts_to(page: Page) -> list[tuple[str, Any]]:
    """Every POST the page sends from now on: (path, JSON body)."""
    sent: list[tuple[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST":
            path = request.url.split("://", 1)[1].split("/", 1)[1]
            sent.append(("/" + path, json.loads(request.post_data or "null")))

    page.on("request", record)
    return sent


async def test_a_retried_job_shows_every_attempt_in_true_order(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    job_id = await submit(api, {"payload": {"task": "flaky"}})
    await until(api, job_id, "done")
    recorded = await job_of(api, job_id)
    [first] = recorded["errors"]
    assert first["started_at"] <= first["at"] <= recorded["started_at"] <= recorded["finished_at"]

    page = await signed_in(browser, server, ADMIN)
    await page.goto(f"{server.url}/dashboard#/jobs/{job_id}")
    attempts = page.locator("tr[data-attempt]")
    await expect(attempts).to_have_count(2)
    await expect(attempts.nth(0)).to_contain_text("failed: because the cache is cold")
    await expect(attempts.nth(1)).to_contain_text("done")
    for row in await attempts.all():
        started, ended, took = [await cell.inner_text() for cell in await row.locator("td").all()][
            1:4
        ]
        assert "—" not in (started, ended, took)
        assert DURATION.match(took), took

    steps = page.locator("ol.timeline li")
    moments = [await step.get_attribute("data-at") or "" for step in await steps.all()]
    assert moments == sorted(moments), moments  # ISO 8601 UTC: text order is time order
    said = [re.sub(r"^.* — ", "", await step.inner_text()) for step in await steps.all()]
    expected = [
        "inserted",
        "attempt 1 started",
        "attempt 1 failed: because the cache is cold after",
        "attempt 2 due",
        "attempt 2 started",
        "attempt 2 done after",
        "finished: done",
    ]
    assert len(said) == len(expected), said
    for text, start in zip(said, expected, strict=True):
        assert text.startswith(start), (text, start)
    await screenshot(page, "job-retried-timeline")


async def test_the_failed_list_shows_each_errors_last_line_and_durations(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    exploded = await submit(api, {"payload": {"task": "explode"}, "max_attempts": 1})
    cold = await submit(api, {"payload": {"task": "flaky"}, "max_attempts": 1})
    for job_id in (exploded, cold):
        await until(api, job_id, "failed")

    page = await signed_in(browser, server, ADMIN)
    await page.goto(f"{server.url}/dashboard#/jobs?status=failed")
    await expect(page.locator("tr[data-job]")).to_have_count(2)
    await expect(page.locator(f'tr[data-job="{exploded}"] .error-line')).to_have_text(
        "RuntimeError: kaboom"
    )
    await expect(page.locator(f'tr[data-job="{cold}"] .error-line')).to_have_text(
        "because the cache is cold"
    )
    for cell in await page.locator("tr[data-job] td.duration").all():
        assert DURATION.match(await cell.inner_text())
    await screenshot(page, "jobs-failed-errors")


async def test_retry_every_failed_job_the_filter_matches_in_one_call(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    exploded = [
        await submit(api, {"payload": {"task": "explode", "n": n}, "max_attempts": 1})
        for n in range(3)
    ]
    other = await submit(api, {"payload": {"task": "flaky"}, "max_attempts": 1})
    for job_id in (*exploded, other):
        await until(api, job_id, "failed")

    page = await signed_in(browser, server, ADMIN)
    sent = posts_to(page)
    await page.goto(f"{server.url}/dashboard#/jobs?status=failed&task=explode")
    await page.click("text=Retry all 3 failed jobs matching this filter…")
    confirm = page.locator(".confirm")
    await expect(confirm).to_contain_text(
        'Retry all 3 failed jobs matching status "failed", task "explode"?'
    )
    assert sent == []  # asked, not done
    await screenshot(page, "bulk-retry-confirm")
    await page.click("text=Retry 3 failed jobs")
    await expect(page.locator("#notice")).to_have_text("3 job(s) retried")
    assert sent == [("/jobs/retry", {"filter": {"status": "failed", "task": "explode"}})]
    for job_id in exploded:  # run again (and exploded again)
        await until(api, job_id, "failed", errors=2)
    assert len((await job_of(api, other))["errors"]) == 1
    await screenshot(page, "bulk-retry-done")


async def test_cancel_every_queued_job_the_filter_matches_after_a_confirmation(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    later = {"payload": {"task": "sleep", "seconds": 0}, "delay": 3600}
    sleepers = [await submit(api, later) for _ in range(3)]
    other = await submit(api, {"payload": {"task": "explode"}, "delay": 3600})

    page = await signed_in(browser, server, ADMIN)
    sent = posts_to(page)
    await page.goto(f"{server.url}/dashboard#/jobs?status=queued&task=sleep")
    ask = page.locator("text=Cancel all 3 queued jobs matching this filter…")
    await ask.click()
    await page.click("text=Keep them")  # changed one's mind: nothing happens
    await expect(page.locator(".confirm")).to_have_count(0)
    await ask.click()
    await expect(page.locator(".confirm")).to_contain_text(
        'Cancel all 3 queued jobs matching status "queued", task "sleep"?'
    )
    await page.click("text=Cancel 3 queued jobs")
    await expect(page.locator("#notice")).to_have_text("3 job(s) cancelled")
    assert sent == [("/jobs/cancel", {"filter": {"status": "queued", "task": "sleep"}})]
    for job_id in sleepers:
        assert (await job_of(api, job_id))["status"] == "cancelled"
    assert (await job_of(api, other))["status"] == "queued"
    await expect(page.locator("text=No jobs match these filters.")).to_be_visible()
    await screenshot(page, "bulk-cancel-done")


@pytest.fixture
def cron_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a cron entry whose last tick is long past: it fires at start."""
    (tmp_path / "servcore.toml").write_text(
        '[[cron]]\nexpression = "* * * * *"\ntask = "sleep"\npayload = { seconds = 0 }\n'
    )
    asyncio.run(_record_old_tick(tmp_path / "dashboard.db", "sleep"))
    with dashboard_server(tmp_path, TOKENS) as up:
        yield up


async def _record_old_tick(path: Path, name: str) -> None:
    store = SqliteStore(f"sqlite:///{path}", str(path))
    await store.open()
    try:
        now = datetime.now(UTC)
        old = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
        await store.advance_cron(name, old, None, now)
    finally:
        await store.close()


@pytest.fixture
async def cron_api(cron_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=cron_server.url, headers=headers) as client:
        yield client


async def test_the_cron_page_shows_each_entry_its_runs_and_last_job(
    browser: Browser, cron_server: ServerProcess, cron_api: httpx.AsyncClient
) -> None:
    async def fired() -> bool:
        return bool((await cron_api.get("/jobs?task=sleep")).json())

    await wait_for(fired, within=30, message="the cron entry to insert its job")
    [job] = (await cron_api.get("/jobs?task=sleep")).json()

    page = await signed_in(browser, cron_server, ADMIN)
    await page.click("nav >> text=Cron")
    entry = page.locator('tr[data-cron="sleep"]')
    await expect(entry).to_contain_text("* * * * *")
    cells = entry.locator("td")
    await expect(cells.nth(4)).not_to_have_text("—")  # next run
    await expect(cells.nth(5)).not_to_have_text("not yet")  # last run
    await expect(entry.locator("td[data-last-job]")).to_have_attribute(
        "data-last-job", str(job["id"])
    )
    await screenshot(page, "cron")
    await entry.locator(f'a[href="#/jobs/{job["id"]}"]').click()
    await expect(page.locator("h1")).to_contain_text(f"Job #{job['id']}")


async def test_a_queue_page_shows_its_rates_and_limits(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    done = [await submit(api, {"payload": {"task": "sleep", "seconds": 0}}) for _ in range(2)]
    failed = await submit(api, {"payload": {"task": "explode"}, "max_attempts": 1})
    for job_id in done:
        await until(api, job_id, "done")
    await until(api, failed, "failed")

    page = await signed_in(browser, server, ADMIN)
    await page.click('tr[data-queue="default"] >> text=default')
    await expect(page.locator("h1")).to_have_text("Queue default ")
    facts = page.locator('dl[data-facts="queue"]')
    await expect(facts).to_contain_text("Concurrency (this node)")
    await expect(facts).to_contain_text("at once")
    await expect(facts).to_contain_text("browser-node")
    # Over the last 5 minutes: 2 done and 1 failed are 0.4 and 0.2 a minute.
    await expect(facts).to_contain_text("Done per minute (last 5 min)0.4/min")
    await expect(facts).to_contain_text("Failed per minute (last 5 min)0.2/min")
    await expect(page.locator('[data-count="done"] .n')).to_have_text("2")
    await screenshot(page, "queue")
    await page.click('button[aria-label="Pause queue default"]')
    await expect(facts).to_contain_text("paused: jobs are accepted, none starts")
    await screenshot(page, "queue-paused")


async def test_the_task_field_suggests_the_registered_tasks(
    browser: Browser, server: ServerProcess
) -> None:
    page = await signed_in(browser, server, ADMIN)
    await page.goto(f"{server.url}/dashboard#/enqueue")
    suggested = page.locator("#e-tasks option")
    await expect(suggested).to_have_count(5)
    values = [await option.get_attribute("value") for option in await suggested.all()]
    assert values == ["explode", "flaky", "record", "sleep", "tick"]  # tests/process_tasks.py's
    assert await page.locator("#e-task").get_attribute("list") == "e-tasks"
    await page.fill("#e-task", "sleeep")
    await expect(page.locator("#e-task-hint")).to_contain_text("No handler for task 'sleeep'")
    await page.fill("#e-task", "sleep")
    await expect(page.locator("#e-task-hint")).to_contain_text("Runs in queue default")
    await screenshot(page, "enqueue-suggests")


async def test_the_focus_frame_is_drawn_for_the_keyboard_only(
    browser: Browser, server: ServerProcess
) -> None:
    page = await signed_in(browser, server, ADMIN)
    outline = "getComputedStyle(document.activeElement).outlineStyle"
    for view in ("#/jobs", "#/cron", "#/"):
        await page.goto(f"{server.url}/dashboard{view}")
        await expect(page.locator("main h1")).to_be_visible()
        await page.wait_for_function("document.activeElement.id === 'main'")
        assert await page.evaluate(outline) == "none", view
    await page.click("nav >> text=Jobs")
    await expect(page.locator("main h1")).to_have_text("Jobs")
    assert await page.evaluate(outline) == "none"
    await screenshot(page, "focus-after-navigation")
    await page.keyboard.press("Tab")  # from the view to its first control
    assert await page.evaluate("document.activeElement.id") == "f-status"
    assert await page.evaluate(outline) == "solid"
    await screenshot(page, "focus-keyboard")


async def test_the_first_paint_is_complete(browser: Browser, server: ServerProcess) -> None:
    page = await signed_in(browser, server, ADMIN)
    # No API call may help: everything the overview shows first is in the page.
    api_reads = re.compile(r"^http://[^/]+/(stats|stats/history|queues|nodes|dashboard/whoami)$")
    await page.route(api_reads, _refuse)
    await page.goto(f"{server.url}/dashboard", wait_until="load")
    painted = await page.evaluate(
        """() => ({
            live: document.getElementById("live").textContent,
            who: document.getElementById("who").textContent,
            heading: document.querySelector("main h1")?.textContent,
            queue: document.querySelector('tr[data-queue="default"]')?.textContent ?? "",
            node: document.querySelector("main")?.textContent.includes("browser-node"),
            banner: document.getElementById("banner").hidden,
        })"""
    )
    assert painted["heading"] == "Overview", painted
    assert "…" not in painted["queue"], painted
    assert "/min" in painted["queue"], painted  # the rates, from the server
    assert painted["node"], painted
    assert painted["banner"], painted  # hidden: nothing went wrong
    assert painted["who"] == "SERVCORE_TOKENS[1] (admin)"
    assert "connecting" not in painted["live"]
    assert painted["live"].startswith("updated")
    await screenshot(page, "first-paint")


async def _refuse(route: Any) -> None:
    await route.abort()


async def test_a_plain_headless_screenshot_shows_the_whole_overview(tmp_path: Path) -> None:
    chromium = chromium_path()
    with dashboard_server(tmp_path, {}) as server:  # no tokens: open on loopback
        async with httpx.AsyncClient(base_url=server.url) as api:
            await until(
                api, await submit(api, {"payload": {"task": "sleep", "seconds": 0}}), "done"
            )
        url = f"{server.url}/dashboard"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        plain = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,800"]
        dom = await _run(chromium, *plain, "--dump-dom", url)
        await _run(chromium, *plain, f"--screenshot={ARTIFACTS / 'plain-headless.png'}", url)
    assert "connecting" not in dom
    assert re.search(r'id="live" class="live ok">updated ', dom), dom[:2000]
    assert '<tr data-queue="default">' in dom
    assert re.search(r'data-count="done"><div class="muted">done</div><div class="n">1<', dom)


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, command
    return out.decode()
