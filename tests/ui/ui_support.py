"""Helpers for the admin UI tests: the gateway under test, Debian's Chromium driven by
Playwright, signing in, screenshots at desktop and phone width, calls through the proxy.

The browser is ``/usr/bin/chromium`` (never a browser Playwright downloads). Without it
the browser tests skip saying why, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from fake_upstream import FakeUpstream
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, gateway_settings
from tollway.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PRICE = {"input_mtok": "1", "output_mtok": "2"}
TIMEOUT = 10.0


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make installs the dev extra)"
    return None


def in_ci() -> bool:
    """Whether this run is CI's (where nothing may skip for want of a browser)."""
    return os.environ.get("CI", "").lower() == "true"


def ui_settings(fake: FakeUpstream, data_dir: Path, **overrides: Any) -> Settings:
    """A gateway in front of ``fake`` with one priced model (every call costs something)."""
    values: dict[str, Any] = {
        "models": [{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM, "price": PRICE}],
        **overrides,
    }
    return gateway_settings(fake, data_dir, **values)


def admin_api(url: str, key: str = MASTER_KEY) -> httpx.Client:
    """The management API with a key."""
    return httpx.Client(
        base_url=url + "/api/v1", headers={"authorization": f"Bearer {key}"}, timeout=TIMEOUT
    )


def chat(url: str, secret: str, content: str = "Say hello.") -> httpx.Response:
    """One chat completion through the proxy with a virtual key."""
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": GPT, "messages": [{"role": "user", "content": content}]},
        headers={"authorization": f"Bearer {secret}"},
        timeout=TIMEOUT,
    )


def sign_in(page: Any, url: str, key: str = MASTER_KEY) -> None:
    """Sign in through the form, as a person would, and wait for the overview."""
    page.goto(url + "/ui/login")
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def shoot(page: Any, name: str) -> None:
    """Screenshots of the page as it is, at desktop and at phone width; at either, the
    page itself never scrolls sideways (wide tables scroll inside their own box)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_function(f"window.innerWidth === {size['width']}")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= size["width"], f"{name} is {wide}px wide at {label} width"
    page.set_viewport_size(DESKTOP)
