"""Single sign-on through an OpenID Connect provider the tests start (``fake_oidc``):
the authorization code flow with PKCE in a real browser, a ``groups`` claim mapped to
a role, and the ways a sign-in must fail (no role, a denial, a forged ID token, a
callback that does not match the browser's attempt)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc
from playwright.sync_api import expect
from ui_support import admin_api, shoot, ui_settings

from fake_upstream import FakeUpstream
from harness import GatewayServer

LABEL = "Sign in with Test SSO"
USERS = {
    "alice@example.com": {"email": "alice@example.com", "groups": ["staff", "tollway-admins"]},
    "bob@example.com": {"email": "bob@example.com", "groups": ["tollway-viewers"]},
    "carol@example.com": {"email": "carol@example.com", "groups": ["contractors"]},
}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidc]:
    """The identity provider, for this module."""
    server = FakeOidc(USERS).start()
    yield server
    server.stop()


@pytest.fixture
def idp(provider: FakeOidc) -> Iterator[FakeOidc]:
    """The provider with nothing recorded and honest signatures."""
    provider.authorizations.clear()
    provider.token_requests.clear()
    provider.forge = False
    yield provider
    provider.forge = False


@pytest.fixture(scope="module")
def sso_gateway(
    provider: FakeOidc, fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway whose UI signs people in through ``provider``."""
    oidc = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "role_claim": "groups",
        "roles": {"tollway-admins": "admin", "tollway-viewers": "viewer"},
        "label": LABEL,
    }
    settings = ui_settings(fake_server, tmp_path_factory.mktemp("sso"), ui={"oidc": oidc})
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def sso(page: Any, gateway: GatewayServer, user: str) -> None:
    """From the sign-in page through the provider's account choice, as a person would."""
    page.goto(gateway.url + "/ui/login")
    page.get_by_role("link", name=LABEL).click()
    page.get_by_role("heading", name="Choose an account").wait_for()
    page.get_by_role("button", name=user).click()


def test_an_admin_signs_in_through_the_provider(
    page: Any, sso_gateway: GatewayServer, idp: FakeOidc
) -> None:
    page.goto(sso_gateway.url + "/ui/login")
    expect(page.get_by_role("link", name=LABEL)).to_be_visible()
    shoot(page, "login-sso")
    sso(page, sso_gateway, "alice@example.com")
    page.get_by_role("heading", name="Overview").wait_for()
    expect(page.locator("#who")).to_have_text("oidc:alice@example.com · admin")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()
    nav.get_by_role("link", name="Keys").click()
    expect(page.get_by_role("button", name="Create key")).to_be_visible()

    # On the wire: PKCE with S256 and a nonce went out; the verifier came back with the
    # code, and the provider (which checks it against the challenge) gave a token.
    asked = idp.authorizations[-1]
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"]
    assert asked["nonce"] and asked["state"]
    assert "openid" in asked["scope"].split()
    traded = idp.token_requests[-1]
    assert traded["grant_type"] == "authorization_code" and traded["code_verifier"]
    assert "client_secret" not in traded  # sent in the Authorization header

    with admin_api(sso_gateway.url) as api:
        entry = api.get("/audit", params={"action": "ui.signed_in", "limit": 1}).json()[0]
    assert entry["actor"] == "oidc:alice@example.com"
    assert entry["details"] == {"via": "oidc", "role": "admin"}


def test_a_viewer_from_the_provider_sees_no_write_controls(
    page: Any, sso_gateway: GatewayServer, idp: FakeOidc
) -> None:
    sso(page, sso_gateway, "bob@example.com")
    page.get_by_role("heading", name="Overview").wait_for()
    expect(page.locator("#who")).to_have_text("oidc:bob@example.com · viewer")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    nav.get_by_role("link", name="Keys").click()
    page.get_by_role("heading", name="Keys").wait_for()
    expect(page.get_by_text("An operator or admin can create keys.")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)


def test_a_user_the_roles_do_not_map_is_refused(
    page: Any, sso_gateway: GatewayServer, idp: FakeOidc
) -> None:
    sso(page, sso_gateway, "carol@example.com")
    expect(page).to_have_url(re.compile(r"/ui/login\?error=oidc_no_role"))
    expect(page.get_by_role("alert")).to_contain_text("Your account has no Tollway role")
    page.goto(sso_gateway.url + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_a_denied_sign_in_says_so(page: Any, sso_gateway: GatewayServer, idp: FakeOidc) -> None:
    page.goto(sso_gateway.url + "/ui/login")
    page.get_by_role("link", name=LABEL).click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("alert")).to_contain_text("did not sign you in")
    assert idp.token_requests == []


def test_a_forged_id_token_is_refused(page: Any, sso_gateway: GatewayServer, idp: FakeOidc) -> None:
    idp.forge = True
    sso(page, sso_gateway, "alice@example.com")
    expect(page.get_by_role("alert")).to_contain_text("could not be verified")
    assert len(idp.token_requests) == 1  # the code was traded; its token was not believed
    page.goto(sso_gateway.url + "/ui/keys")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/keys"))


def _start(client: httpx.Client, idp: FakeOidc, user: str) -> dict[str, str]:
    """Begin a sign-in and let ``user`` approve it: the query of the callback URL."""
    begun = client.get("/ui/oidc/login")
    assert begun.status_code == 303
    authorize = urlsplit(begun.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == idp.issuer
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    approved = httpx.post(idp.issuer + "/authorize", data={**params, "user": user})
    assert approved.status_code == 302
    back = urlsplit(approved.headers["location"])
    assert back.path == "/ui/oidc/callback"
    return {k: v[0] for k, v in parse_qs(back.query).items()}


def test_the_callback_must_match_the_browsers_attempt(
    sso_gateway: GatewayServer, idp: FakeOidc
) -> None:
    with httpx.Client(base_url=sso_gateway.url, timeout=10) as client:
        answer = _start(client, idp, "alice@example.com")
        pending = client.cookies["tollway_oidc"]
        # Another state than the one this browser was sent off with.
        wrong = client.get("/ui/oidc/callback", params={**answer, "state": "x" * 30})
        assert wrong.status_code == 303
        assert wrong.headers["location"] == "/ui/login?error=oidc_state"
        assert "tollway_session" not in client.cookies
        # Without the attempt's cookie (another browser), the code is worth nothing.
        with httpx.Client(base_url=sso_gateway.url, timeout=10) as other:
            stolen = other.get("/ui/oidc/callback", params=answer)
        assert stolen.headers["location"] == "/ui/login?error=oidc_expired"
        # The browser that began it finishes it: a session, audited, with its role.
        client.cookies.set("tollway_oidc", pending, path="/ui/oidc")
        done = client.get("/ui/oidc/callback", params=answer)
        assert done.status_code == 200
        assert done.headers["refresh"] == "0; url=/ui"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        session = client.get("/ui/session").json()
        assert session["kind"] == "oidc" and session["role"] == "admin"
        # The same code a second time: the provider refuses it, and so does the gateway.
        client.cookies.set("tollway_oidc", pending, path="/ui/oidc")
        replay = client.get("/ui/oidc/callback", params=answer)
        assert replay.headers["location"] == "/ui/login?error=oidc_failed"
