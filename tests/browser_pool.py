"""One headless Chromium per test process, shared by the browser tests.

Starting Chromium costs about a second of CPU and the Playwright driver half a second more;
a new browser context costs about 0.4 s. The suite opens some ninety pages, so each test
process (each pytest-xdist worker) starts the driver and Chromium once, on the session's
event loop (pyproject: the tests' loop scope is the session), and every page gets a context
of its own: its own cookies, storage, cache and permissions, closed by the test that opened
it. tests/conftest.py closes the browser when the session ends.

The browser is Debian's chromium-headless-shell: the old headless shell, the build Playwright
itself launches for headless runs. It renders the same pages with the same engine as the full
browser (same version) without the windowing layers, and costs about 40% less CPU over the
browser tests on two cores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Playwright, async_playwright

CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    # A test camera at 5 frames a second: the calls' video is real (captured, encoded, sent,
    # decoded) at a quarter of the frames of the default fake device.
    "--use-fake-device-for-media-stream=fps=5",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_playwright: Playwright | None = None
_browser: Browser | None = None


async def shared_browser() -> Browser:
    """The process's Chromium, started on first use (again if it went away)."""
    global _playwright, _browser
    if _playwright is None:
        _playwright = await async_playwright().start()
    if _browser is None or not _browser.is_connected():
        _browser = await _playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    return _browser


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """`async with chromium() as browser:` the shared browser, for a test's contexts."""
    yield await shared_browser()


async def close() -> None:
    global _playwright, _browser
    if _browser is not None:
        await _browser.close()
        _browser = None
    if _playwright is not None:
        await _playwright.stop()
        _playwright = None
