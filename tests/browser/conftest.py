"""Browser tests: Debian's chromium, headless, driven by Playwright (nothing downloaded).

Without chromium on the machine they skip and say why — except under
``CI=true``, where they must run. ``make test`` installs chromium from
Debian's packages when it can.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.processes import ServerProcess, servcore_serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "dashboard"
ADMIN = "admin-token-for-the-browser-tests"
READ = "read-token-for-the-browser-tests"


def chromium_path() -> str:
    found = os.environ.get("SERVCORE_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    reason = "Debian's chromium is not installed (apt-get install chromium; make test does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run under CI: {reason}")
    pytest.skip(reason)


TOKENS = {"SERVCORE_TOKENS": f"admin:{ADMIN},read:{READ}"}


@contextmanager
def dashboard_server(tmp_path: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    """``servcore serve`` of the test tasks on SQLite in ``tmp_path`` (its
    ``servcore.toml``, if any, read), up and answering."""
    store = f"sqlite:///{tmp_path / 'dashboard.db'}"
    env = {"SERVCORE_NODE": "browser-node", **env}
    with servcore_serve(tmp_path, "tests.process_tasks:service", "--store", store, env=env) as up:
        up.wait_ready()
        yield up


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with dashboard_server(tmp_path, TOKENS) as up:
        yield up


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


# Uncaught errors of the pages' scripts, in any test: each test must end with none.
PAGE_ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_script_errors() -> Iterator[None]:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == [], PAGE_ERRORS


async def signed_in(browser: Browser, server: ServerProcess, token: str, **options: object) -> Page:
    page = await browser.new_page(**options)  # type: ignore[arg-type]
    page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
    await page.goto(f"{server.url}/dashboard")
    assert page.url.endswith("/dashboard/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{server.url}/dashboard")
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
