"""The admin UI in a real browser, as a person uses it: sign in, create a key and read
its secret, call the proxy with it, find its spend and its request-log entry, revoke
it and see the next call refused, verify the audit chain, sign out. Every page is
photographed at desktop and phone width (``tests/ui/screenshots``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_support import chat, shoot, sign_in

from harness import GPT_UPSTREAM, GatewayServer
from upstream_wire import COMPLETION_TOKENS, PROMPT_TOKENS

# What the one call costs at the test model's price ($1 and $2 per million tokens).
COST = f"${(PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2) / 1e6:.6f}"
NAV = ["Overview", "Keys", "Projects", "Spend", "Requests", "Providers", "Audit"]


def open_page(page: Any, gateway: GatewayServer, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, exact=True).wait_for()
    expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)


def test_sign_in_create_call_find_revoke_audit_sign_out(
    page: Any, ui_gateway: GatewayServer
) -> None:
    url = ui_gateway.url
    page.goto(url + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    shoot(page, "login")
    page.get_by_label("Admin key").fill("sk-tw-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the master key")
    sign_in(page, url)
    nav = page.get_by_role("navigation", name="Main")
    for name in NAV:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text("No calls in this range")).to_be_visible()
    shoot(page, "overview-empty")

    # Capture bodies for the default project, so the request log shows them.
    open_page(page, ui_gateway, "Projects")
    page.get_by_role("button", name="Edit default").click()
    dialog = page.get_by_role("dialog", name="Edit default")
    dialog.get_by_label("Capture request and response bodies in the request log").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)

    open_page(page, ui_gateway, "Keys")
    expect(page.get_by_text("No keys yet")).to_be_visible()
    shoot(page, "keys-empty")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("journey")
    dialog.get_by_label("Lifetime").fill("2h")
    dialog.get_by_label("Budget (USD)").fill("5")
    dialog.get_by_label("Budget period").select_option("day")
    dialog.get_by_label("Requests per minute").fill("60")
    dialog.get_by_label("Metadata").fill("org=acme\nsession=42")
    shoot(page, "key-create")
    dialog.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("dialog", name="New key")
    secret = shown.get_by_label("Secret key").input_value()
    assert secret.startswith("sk-tw-")
    env = shown.locator("#key-env").inner_text()
    assert f"export OPENAI_API_KEY={secret}" in env
    assert f"export OPENAI_BASE_URL={url}/v1" in env
    assert f"export ANTHROPIC_BASE_URL={url}" in env
    expect(shown.get_by_role("button", name="Copy key")).to_be_visible()
    expect(shown.get_by_role("button", name="Copy env block")).to_be_visible()
    shoot(page, "key-secret")
    shown.get_by_role("button", name="Close").click()
    row = page.get_by_role("row").filter(has_text="journey")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("$5.00 / day")

    # Find it by search and by metadata; a filter that matches nothing says so.
    page.get_by_label("Search").fill("journ")
    expect(row).to_be_visible()
    page.get_by_label("Search").fill("nothing like it")
    expect(page.get_by_text("No keys match these filters")).to_be_visible()
    page.get_by_label("Search").fill("")
    page.get_by_label("Metadata").fill("org=acme")
    page.get_by_label("Metadata").press("Enter")
    expect(row).to_be_visible()
    page.get_by_label("Metadata").fill("org=other")
    page.get_by_label("Metadata").press("Enter")
    expect(page.get_by_text("No keys match these filters")).to_be_visible()
    page.get_by_label("Metadata").fill("")
    page.get_by_label("Metadata").press("Enter")

    # Edit its limits.
    page.get_by_role("button", name="Edit journey").click()
    dialog = page.get_by_role("dialog", name="Edit journey")
    expect(dialog.get_by_label("Requests per minute")).to_have_value("60")
    dialog.get_by_label("Requests per minute").fill("120")
    dialog.get_by_label("Tokens per minute").fill("50000")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(row).to_contain_text("120 rpm, 50,000 tpm")

    called = chat(url, secret, "Say hello to the journey.")
    assert called.status_code == 200, called.text
    key_id = row.locator(".mono").inner_text().split("·")[1].strip()

    open_page(page, ui_gateway, "Spend")
    page.get_by_label("Group by").select_option("key")
    spend_row = page.get_by_role("row").filter(has_text="journey")
    expect(spend_row).to_contain_text("$")
    expect(spend_row.get_by_role("cell").nth(6)).to_have_text(COST)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv = Path(download.value.path()).read_text(encoding="utf-8")
    assert csv.startswith("group,name,requests") and key_id in csv and "journey" in csv
    shoot(page, "spend")
    page.get_by_label("Group by").select_option("metadata")
    page.get_by_label("Metadata field").fill("org")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row").filter(has_text="acme")).to_contain_text(COST)

    open_page(page, ui_gateway, "Requests")
    entry = page.get_by_role("row").filter(has_text="gpt-test").first
    expect(entry).to_contain_text("200")
    page.get_by_label("Model").fill("another-model")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No requests match")).to_be_visible()
    page.get_by_label("Model").fill("")
    page.get_by_label("Status").select_option("2xx")
    expect(entry).to_contain_text(COST)
    shoot(page, "requests")
    entry.get_by_role("link").click()
    detail = page.locator("#request-detail")
    expect(detail).to_contain_text("Attempts")
    # The upstream attempts as a table: one try, on the model's deployment, answered.
    attempts = detail.locator("#request-attempts").get_by_role("row")
    expect(attempts).to_have_count(2)  # the header and the one try
    for shown in (f"oa/{GPT_UPSTREAM}", "ok", "200"):
        expect(attempts.nth(1)).to_contain_text(shown)
    expect(detail).to_contain_text(key_id)
    expect(detail).to_contain_text("Say hello to the journey.")
    shoot(page, "request-detail")

    open_page(page, ui_gateway, "Overview")
    expect(page.locator(".card").filter(has_text="Requests")).to_contain_text("1")
    page.get_by_role("button", name="Last 7 days").click()
    expect(page.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("heading", name="Spend per day")).to_be_visible()
    shoot(page, "overview")

    open_page(page, ui_gateway, "Keys")
    page.get_by_role("button", name="Revoke journey").click()
    confirm = page.get_by_role("dialog", name="Revoke journey?")
    confirm.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("row").filter(has_text="journey")).to_contain_text("revoked")
    shoot(page, "keys")
    refused = chat(url, secret)
    assert refused.status_code == 401, refused.text

    for name in ("Projects", "Providers"):
        open_page(page, ui_gateway, name)
        shoot(page, name.lower())
    expect(page.get_by_role("row").filter(has_text="gpt-test")).to_contain_text("closed")

    open_page(page, ui_gateway, "Audit")
    expect(page.get_by_role("cell", name="key.revoked")).to_be_visible()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#verify-result")).to_contain_text("Chain intact")
    shoot(page, "audit")
    page.get_by_label("Action").fill("key.created")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="key.revoked")).to_have_count(0)
    expect(page.get_by_role("cell", name="key.created")).to_have_count(1)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    # The browser keeps no way in: the API gives it nothing, the pages send it to sign in.
    answer = page.request.get(url + "/api/v1/keys")
    assert answer.status == 401 and "journey" not in answer.text()
    page.goto(url + "/ui/keys")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/keys"))


def test_revoke_every_key_of_a_project(page: Any, ui_gateway: GatewayServer) -> None:
    sign_in(page, ui_gateway.url)
    open_page(page, ui_gateway, "Projects")
    page.get_by_role("button", name="Create project").click()
    dialog = page.get_by_role("dialog", name="Create project")
    dialog.get_by_label("Name").fill("acme")
    dialog.get_by_label("Budget (USD)").fill("20")
    dialog.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("row").filter(has_text="acme")).to_contain_text("$20.00")
    open_page(page, ui_gateway, "Keys")
    secrets = []
    for name in ("acme-1", "acme-2"):
        page.get_by_role("button", name="Create key").click()
        dialog = page.get_by_role("dialog", name="Create key")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_label("Project").select_option("acme")
        dialog.get_by_role("button", name="Create key").click()
        shown = page.get_by_role("dialog", name="New key")
        secrets.append(shown.get_by_label("Secret key").input_value())
        shown.get_by_role("button", name="Close").click()
    page.get_by_label("Project").select_option(label="acme")
    page.get_by_role("button", name="Revoke all keys of acme").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke all keys").click()
    expect(page.get_by_role("row").filter(has_text="acme-1")).to_contain_text("revoked")
    expect(page.get_by_role("row").filter(has_text="acme-2")).to_contain_text("revoked")
    for secret in secrets:
        assert chat(ui_gateway.url, secret).status_code == 401


def test_errors_show_where_they_happened(page: Any, ui_gateway: GatewayServer) -> None:
    sign_in(page, ui_gateway.url)
    open_page(page, ui_gateway, "Keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("bad ttl")
    dialog.get_by_label("Lifetime").fill("forever")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_role("alert")).to_contain_text("ttl")
    expect(dialog.get_by_label("Lifetime")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Lifetime").fill("90m")
    dialog.get_by_label("Budget (USD)").fill("-1")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_role("alert")).to_contain_text("max_budget_usd")
    expect(dialog.get_by_label("Budget (USD)")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="bad ttl")).to_have_count(0)
