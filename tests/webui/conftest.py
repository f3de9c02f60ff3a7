"""The web UI's browser tests: Debian's chromium (``/usr/bin/chromium``, or ``LEVERET_CHROMIUM``)
driven by Playwright through its ``executable_path``; Playwright's own browser downloads are never
used. One browser for the whole session; each test opens its own context (no shared storage).
Without Playwright or chromium the tests skip, saying which is missing."""
from __future__ import annotations

import os
import shutil

import pytest

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")


def chromium_path() -> str | None:
    env = os.environ.get("LEVERET_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for c in CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install playwright; no `playwright install`)")
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests need a system chromium (apt-get install chromium), or LEVERET_CHROMIUM=/path")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own context: empty sessionStorage and localStorage) whose JavaScript
    errors fail the test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 760})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(30000)
    yield pg
    ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> str:
    """Where screenshots go: ``LEVERET_SCREENSHOTS`` (``docs/screenshots`` to refresh the
    documentation's), else a temporary directory."""
    d = os.environ.get("LEVERET_SCREENSHOTS") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(d, exist_ok=True)
    return d
