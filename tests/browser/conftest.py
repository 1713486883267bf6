"""The dashboard in a real browser: Debian's chromium driven by Playwright, never downloaded.

The whole package is skipped, saying why, where no chromium is installed (CHROMIUM_PATH, else
/usr/bin/chromium; CI installs it with .ci/install-chromium).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need chromium at {CHROMIUM} (set CHROMIUM_PATH); not found")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, api_url: str) -> AsyncIterator[BrowserContext]:
    # English unless a test switches: the browser's own language must not decide the page.
    opened = await browser.new_context(base_url=api_url, viewport=VIEWPORT, locale="en-US")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()
