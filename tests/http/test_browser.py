"""End to end in headless Chromium (Debian's `chromium`, driven by Playwright): start a
run from the dashboard, watch it reach `suspended` without reloading, signal it from the
page, see it complete, cancel another; screenshot every page at desktop and phone width.

Screenshots go to the test's tmp dir, or to $DURABLE_SCREENSHOTS (docs/img/ is made so).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpfix
import pytest
from httpfix import Server

server = httpfix.server
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
HAVE_CHROMIUM = Path(CHROMIUM).exists()

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip("no chromium: install it with `apt-get install -y chromium`")
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def open_page(browser: Any, server: Server, width: int, height: int) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    await page.add_init_script(f"localStorage.setItem('durable.token', {server.token!r})")
    return page


async def start_run(page: Any, workflow: str, input_json: str) -> str:
    await page.fill("#trigger [name=new-workflow]", workflow)
    await page.fill("#trigger [name=new-input]", input_json)
    toasts = page.locator(".notice", has_text="Started")
    before = await toasts.count()  # earlier toasts may still be showing
    await page.click("#trigger button[type=submit]")
    notice = toasts.nth(before)
    await notice.wait_for()
    text = await notice.inner_text()
    match = re.search(r"Started (\S+)", text)
    assert match, text
    return match.group(1)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("DURABLE_SCREENSHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshots_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("dashboard-*.png"))


async def test_dashboard_end_to_end(browser: Any, server: Server, shots: Path) -> None:
    page = await open_page(browser, server, 1280, 860)
    await page.goto(f"{server.url}/#/")
    await page.locator("#live.on").wait_for()  # the event stream is connected
    await page.evaluate("window.__sameDocument = true")

    run_id = await start_run(page, "approval", '{"order": 42}')
    row = page.locator(f'tr[data-run="{run_id}"]')
    # Reaches `suspended` through live updates alone: no reload, no navigation.
    await row.locator('[data-status="suspended"]').wait_for()
    assert await page.evaluate("window.__sameDocument") is True

    await row.locator("a").click()
    await page.locator("h1 [data-status=suspended]").wait_for()
    assert await page.input_value("#signal [name=signal-name]") == "approve"  # what it waits on
    await page.fill("#signal [name=signal-payload]", '{"approved": true}')
    await page.click("#signal button[type=submit]")
    await page.locator("h1 [data-status=completed]").wait_for()
    assert "approved" in await page.locator("pre.json").nth(1).inner_text()
    assert await page.evaluate("window.__sameDocument") is True

    # Cancel another run from its page.
    await page.goto(f"{server.url}/#/")
    other = await start_run(page, "approval", '"cancel me"')
    await page.locator(f'tr[data-run="{other}"] [data-status="suspended"]').wait_for()
    await page.locator(f'tr[data-run="{other}"] a').click()
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.click("#cancel")
    await page.locator("h1 [data-status=cancelled]").wait_for()

    # A richer run for the screenshots: a parent with a child, tags and custom events.
    with server.client() as c:
        fam = c.post(
            "/api/workflows/runs",
            json={"workflow": "family", "input": 7, "tags": {"team": "billing"}},
        ).json()["run_id"]
        c.post("/api/workflows/runs", json={"workflow": "steps", "input": 5})
        c.post(
            "/api/workflows/runs", json={"workflow": "order", "input": {"order_id": 9, "amount": 3}}
        )
        await page.goto(f"{server.url}/#/runs/{fam}")
        await page.locator("h1 [data-status=suspended]").wait_for()
        c.post(
            "/api/workflows/events", json={"run_id": fam, "type": "note", "payload": {"by": "ops"}}
        )
        await page.locator("text=Custom events (1)").wait_for()  # live on the run page too

    for width, height, suffix in ((1280, 860, ""), (390, 844, "-phone")):
        p = await open_page(browser, server, width, height)
        for name, frag, ready in (
            ("runs", "#/", "tr[data-run]"),
            ("run", f"#/runs/{fam}", "h1 [data-status]"),
            ("schedules", "#/schedules", "tr[data-schedule]"),
        ):
            await p.goto(f"{server.url}/{frag}")
            await p.locator(ready).first.wait_for()
            await p.wait_for_timeout(300)
            await p.screenshot(path=str(shots / f"dashboard-{name}{suffix}.png"), full_page=True)
        await p.close()
    # Pause a schedule from the page.
    await page.goto(f"{server.url}/#/schedules")
    await page.click('tr[data-schedule="nightly"] button')
    await page.locator('tr[data-schedule="nightly"] button', has_text="Resume").wait_for()
    assert len(screenshots_in(shots)) == 6
