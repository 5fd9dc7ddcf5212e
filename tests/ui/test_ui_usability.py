"""The UI for a person: keyboard only from sign-in to a new key, progress while the
gateway is slow to answer, and times in the browser's own time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from ui_support import DESKTOP, admin_api, sign_in

from harness import MASTER_KEY, GatewayServer

ZONE = "Asia/Tokyo"


def tab_to(page: Any, locator: Any, presses: int = 30) -> None:
    """Press Tab until ``locator`` has the focus (a keyboard user's way there)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if locator.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {locator}")


def test_keyboard_only_from_sign_in_to_a_new_key(page: Any, ui_gateway: GatewayServer) -> None:
    page.goto(ui_gateway.url + "/ui/login")
    key = page.get_by_label("Admin key")
    expect(key).to_be_focused()
    page.keyboard.type(MASTER_KEY)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Overview").wait_for()

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    nav = page.get_by_role("navigation", name="Main")
    page.reload()
    page.get_by_role("heading", name="Overview").wait_for()
    tab_to(page, nav.get_by_role("link", name="Keys"))
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Keys").wait_for()
    expect(nav.get_by_role("link", name="Keys")).to_have_attribute("aria-current", "page")

    tab_to(page, page.get_by_role("button", name="Create key").first)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create key")
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.type("typed key")
    page.keyboard.press("Enter")
    shown = page.get_by_role("dialog", name="New key")
    expect(shown.get_by_label("Secret key")).to_be_visible()
    page.keyboard.press("Escape")
    expect(shown).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="typed key")).to_contain_text("active")

    # Escape leaves a form without a change.
    tab_to(page, page.get_by_role("button", name="Edit typed key"))
    page.keyboard.press("Enter")
    edit = page.get_by_role("dialog", name="Edit typed key")
    expect(edit).to_be_visible()
    page.keyboard.press("Escape")
    expect(edit).to_have_count(0)


def test_progress_shows_while_the_gateway_answers(page: Any, ui_gateway: GatewayServer) -> None:
    sign_in(page, ui_gateway.url)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Spend").click()
    page.get_by_role("heading", name="Spend").wait_for()
    expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)
    held: list[Any] = []

    def report(url: str) -> bool:
        return "/api/v1/spend?" in url

    def hold(route: Any) -> None:
        held.append(route)  # the answer waits until the test lets it go

    page.route(report, hold)
    page.get_by_role("button", name="Show").click()
    progress = page.get_by_role("status").filter(has_text="Loading")
    expect(progress).to_be_visible()
    assert held, "the report was asked for"
    for route in held:
        route.continue_()
    page.unroute(report)
    expect(progress).to_have_count(0)
    expect(page.get_by_text("No spend in this range")).to_be_visible()


@pytest.fixture
def tokyo(browser: Any) -> Iterator[Any]:
    """A page in a browser set to Tokyo's time zone and US English."""
    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE, locale="en-US")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_times_are_in_the_browsers_zone(tokyo: Any, ui_gateway: GatewayServer) -> None:
    with admin_api(ui_gateway.url) as api:
        made = api.post("/keys", json={"name": "zoned", "ttl": "2h"}).json()
    sign_in(tokyo, ui_gateway.url)
    tokyo.get_by_role("navigation", name="Main").get_by_role("link", name="Keys").click()
    row = tokyo.get_by_role("row").filter(has_text="zoned")
    expires = row.locator("time").first
    when = datetime.fromisoformat(made["expires_at"]).astimezone(ZoneInfo(ZONE))
    hour = when.hour % 12 or 12
    expected = f"{when:%b} {when.day}, {when.year}, {hour}:{when:%M} {when:%p}"
    shown = expires.inner_text().replace("\u202f", " ").replace("\xa0", " ")
    assert shown == expected, (shown, expected)
    tokyo.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    expect(tokyo.get_by_text(f"your time zone ({ZONE})")).to_be_visible()
