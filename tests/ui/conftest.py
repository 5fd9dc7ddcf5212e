"""Fixtures for the admin UI tests: the real gateway on a real port in front of the fake
upstream, and a browser (Debian's Chromium under Playwright) with a fresh context per
test that fails the test on any script error in the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ui_support import CHROMIUM, DESKTOP, browser_missing, in_ci, ui_settings

from fake_upstream import FakeUpstream
from harness import GatewayServer


@pytest.fixture(scope="module")
def ui_gateway(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The gateway for this module."""
    server = GatewayServer(ui_settings(fake_server, tmp_path_factory.mktemp("ui"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Chromium, headless, for the session."""
    missing = browser_missing()
    if missing is not None:
        if in_ci():
            pytest.fail(f"the browser tests must run under CI=true: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies), failing the test on page errors."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield page
    context.close()
    # The browser logs every 4xx answer as a failed load; refusals are what some tests
    # expect. Script errors are never expected.
    unexpected = [e for e in errors if not e.startswith("Failed to load resource")]
    assert not unexpected, unexpected
