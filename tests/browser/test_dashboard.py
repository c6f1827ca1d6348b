"""The dashboard in a real browser: every page, filters, a job, retry, cancel, pause."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import ADMIN, READ, screenshot, signed_in
from tests.conftest import wait_for
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow


async def test_an_operator_sees_and_steers_everything(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    explode = {"payload": {"task": "explode"}, "max_attempts": 1}
    failed = (await api.post("/jobs", json=explode)).json()
    later = await api.post(
        "/jobs", json={"payload": {"task": "sleep", "seconds": 1}, "delay": 3600}
    )
    later_id = later.json()["job_id"]
    page = await signed_in(browser, server, ADMIN)

    # Overview: counts, the last hour, queues and nodes.
    await expect(page.locator("#who")).to_have_text("SERVCORE_TOKENS[1] (admin)")
    queue = page.locator('tr[data-queue="default"]')
    await expect(queue).to_be_visible()
    await expect(page.locator("text=browser-node")).to_be_visible()
    await expect(page.locator(".chart")).to_be_visible()
    await expect(queue).to_contain_text("/min")  # rates, from one refresh to the next
    await screenshot(page, "overview")

    # Pause the queue, see it, resume it.
    await page.click('button[aria-label="Pause queue default"]')
    await expect(queue.locator(".status.paused")).to_have_text("paused")
    assert (await api.get("/queues")).json()[0]["paused"] is True
    await screenshot(page, "overview-paused")
    await page.click('button[aria-label="Resume queue default"]')
    await expect(queue.locator(".status.paused")).to_have_count(0)

    # Jobs, filtered to the failed one.
    failed_id = failed["job_id"]
    await wait_until_failed(api, failed_id)
    await page.goto(f"{server.url}/dashboard#/jobs")
    await page.select_option("#f-status", "failed")
    await page.click("form.filters button[type=submit]")
    rows = page.locator("tr[data-job]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job", str(failed_id))
    await screenshot(page, "jobs-failed")

    # Open it: the error and its traceback; retry it.
    await page.click(f'a[href="#/jobs/{failed_id}"]')
    await expect(page.locator("h1")).to_contain_text(f"Job #{failed_id}")
    await expect(page.locator("details summary")).to_contain_text("RuntimeError: kaboom")
    await page.click("details summary")
    await expect(page.locator("details pre")).to_contain_text('raise RuntimeError("kaboom")')
    # The next refresh leaves the open traceback alone, and says so.
    await expect(page.locator("#live")).to_contain_text("paused while you read")
    await expect(page.locator("details[open] pre")).to_be_visible()
    await screenshot(page, "job-failed")
    await page.click("text=Retry")
    await expect(page.locator("text=Errors (2)")).to_be_visible(timeout=15_000)

    # Cancel the scheduled one.
    await page.goto(f"{server.url}/dashboard#/jobs/{later_id}")
    await expect(page.locator("h1 .status")).to_have_text("scheduled")
    await page.click("text=Cancel")
    await expect(page.locator("h1 .status")).to_have_text("cancelled")
    assert (await api.get(f"/jobs/{later_id}")).json()["status"] == "cancelled"
    await screenshot(page, "job-cancelled")

    # Search by payload text, then enqueue from the form.
    await page.goto(f"{server.url}/dashboard#/jobs?q=explode")
    await expect(page.locator("tr[data-job]")).to_have_count(1)
    await page.goto(f"{server.url}/dashboard#/enqueue")
    await page.fill("#e-task", "sleep")
    await page.fill("#e-payload", '{"seconds": 0}')
    await page.click("text=Enqueue >> nth=-1")
    await expect(page.locator("h1")).to_contain_text("Job #")
    await expect(page.locator("h1 .status")).to_have_text("done", timeout=15_000)
    await screenshot(page, "job-enqueued")


async def wait_until_failed(api: httpx.AsyncClient, job_id: int) -> None:
    async def failed() -> bool:
        return bool((await api.get(f"/jobs/{job_id}")).json()["status"] == "failed")

    await wait_for(failed, message="the exploding job to fail")


async def test_a_read_token_sees_but_cannot_act(
    browser: Browser, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    await api.post("/jobs", json={"payload": {"task": "sleep", "seconds": 1}, "delay": 3600})
    page = await signed_in(browser, server, READ)
    await expect(page.locator('tr[data-queue="default"]')).to_be_visible()
    await expect(page.locator('button[aria-label^="Pause"]')).to_have_count(0)
    await page.goto(f"{server.url}/dashboard#/jobs/1")
    await expect(page.locator("h1")).to_contain_text("Job #1")
    await expect(page.locator("text=Cancel")).to_have_count(0)
    await page.goto(f"{server.url}/dashboard#/enqueue")
    await expect(page.locator("text=Your token cannot submit jobs.")).to_be_visible()


async def test_a_wrong_token_is_refused_and_phone_width_works(
    browser: Browser, server: ServerProcess
) -> None:
    page = await browser.new_page()
    await page.goto(f"{server.url}/dashboard/login")
    await page.fill("#token", "this-is-not-a-token-at-all")
    await page.click("button[type=submit]")
    await expect(page.locator("[role=alert]")).to_contain_text("not valid")

    phone = await signed_in(browser, server, ADMIN, viewport={"width": 390, "height": 844})
    await expect(phone.locator("h1")).to_have_text("Overview")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    # The keyboard reaches the navigation: Tab from the top lands on a link.
    await phone.keyboard.press("Tab")
    await phone.keyboard.press("Tab")
    focused = await phone.evaluate("document.activeElement.tagName")
    assert focused in ("A", "BUTTON")
    await screenshot(phone, "overview-phone")
    await phone.goto(f"{server.url}/dashboard#/jobs?status=failed")
    await expect(phone.locator("text=No jobs match these filters.")).to_be_visible()
    await screenshot(phone, "jobs-empty-phone")
