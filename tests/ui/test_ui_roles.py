"""What each role sees: a viewer reads every page it may and finds no control that
changes anything, the audit log is not among its pages, and the API refuses a change
from its session anyway (with a valid CSRF token)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from ui_support import admin_api, chat, shoot, sign_in

from harness import GatewayServer

# Buttons that only read: ranges, filters, downloads, paging, dismissing.
READ_ONLY = {
    "Last 24 hours",
    "Last 7 days",
    "Last 30 days",
    "Show",
    "Filter",
    "Download CSV",
    "Refresh",
    "Load more",
    "Close",
}
PAGES = ["Overview", "Keys", "Projects", "Spend", "Requests", "Providers"]


def test_a_viewer_sees_no_write_controls(page: Any, ui_gateway: GatewayServer) -> None:
    url = ui_gateway.url
    with admin_api(url) as api:
        project = api.post("/projects", json={"name": "viewed", "max_budget_usd": "3"}).json()
        made = api.post("/keys", json={"name": "seen", "project": project["id"]}).json()
        viewer = api.post("/admin-keys", json={"name": "reader", "role": "viewer"}).json()
    assert chat(url, made["key"]).status_code == 200

    sign_in(page, url, viewer["key"])
    expect(page.locator("#who")).to_have_text(f"admin_key:{viewer['id']} · viewer")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    for name in PAGES:
        nav.get_by_role("link", name=name, exact=True).click()
        page.get_by_role("heading", name=name, exact=True).wait_for()
        expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)
        if name == "Keys":
            expect(page.get_by_role("row").filter(has_text="seen")).to_be_visible()
        if name == "Projects":
            expect(page.get_by_role("row").filter(has_text="viewed")).to_be_visible()
        buttons = set(page.locator("main button").all_inner_texts())
        assert buttons <= READ_ONLY, (name, buttons - READ_ONLY)
        assert page.locator("main input[type=checkbox]").count() == 0, name
        shoot(page, f"{name.lower()}-viewer")
    # Straight to the audit page's address: it says who may read it, and shows nothing.
    page.goto(url + "/ui/audit")
    expect(page.get_by_text("The audit log needs the admin role")).to_be_visible()
    expect(page.get_by_role("button", name="Verify chain")).to_have_count(0)

    # Hidden is not all: the API refuses the viewer's session a change, CSRF token and all.
    refused = page.evaluate(
        """async () => {
          const session = await (await fetch("/ui/session")).json();
          const answer = await fetch("/api/v1/keys", {
            method: "POST",
            headers: {"content-type": "application/json", "x-csrf-token": session.csrf_token},
            body: JSON.stringify({name: "not allowed"}),
          });
          return [answer.status, (await answer.json()).error.message];
        }"""
    )
    assert refused[0] == 403
    assert re.search(r"needs the 'operator' role", refused[1]), refused
    with admin_api(url) as api:
        assert not [k for k in api.get("/keys").json() if k["name"] == "not allowed"]


def test_an_operator_manages_keys_but_not_the_audit_log(
    page: Any, ui_gateway: GatewayServer
) -> None:
    with admin_api(ui_gateway.url) as api:
        operator = api.post("/admin-keys", json={"name": "ops", "role": "operator"}).json()
    sign_in(page, ui_gateway.url, operator["key"])
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    nav.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("by an operator")
    dialog.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("dialog", name="New key")
    expect(shown.get_by_label("Secret key")).to_have_value(re.compile(r"^sk-tw-"))
    shown.get_by_role("button", name="Close").click()
    expect(page.get_by_role("row").filter(has_text="by an operator")).to_contain_text("active")
