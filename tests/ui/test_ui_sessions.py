"""UI sessions over plain HTTP: redirects without a session, the cookie's flags, CSRF on
writes, the Content-Security-Policy, sign-out and expiry, revoked and rotated keys, and
a UI made only of files shipped in the package."""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, update
from ui_support import admin_api, ui_settings

from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer, running_gateway
from tollway.app import create_app
from tollway.store.tables import UiSession
from tollway.ui.assets import Assets

PAGES = ["", "/overview", "/keys", "/projects", "/spend", "/requests", "/providers", "/audit"]


@pytest.fixture
def browser_like(ui_gateway: GatewayServer) -> Iterator[httpx.Client]:
    """An HTTP client that keeps cookies, like a browser on the UI's origin."""
    with httpx.Client(base_url=ui_gateway.url, timeout=10, follow_redirects=False) as client:
        yield client


def sign_in(client: httpx.Client, key: str = MASTER_KEY) -> str:
    """Sign in; the session's CSRF token."""
    response = client.post("/ui/session", json={"key": key})
    assert response.status_code == 201, response.text
    return str(response.json()["csrf_token"])


def test_pages_redirect_to_sign_in_without_a_session(browser_like: httpx.Client) -> None:
    for path in PAGES:
        response = browser_like.get("/ui" + path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login"), path
    login = browser_like.get("/ui/login")
    assert login.status_code == 200
    assert "Admin key" in login.text and "Sign in" in login.text


def test_the_api_gives_no_data_without_a_session(browser_like: httpx.Client) -> None:
    for path in ("/api/v1/keys", "/api/v1/spend", "/api/v1/requests", "/api/v1/audit"):
        response = browser_like.get(path)
        assert response.status_code == 401, path
        assert "data" not in response.json()
    assert browser_like.get("/ui/session").status_code == 401


def test_cookie_flags_and_security_headers(browser_like: httpx.Client) -> None:
    response = browser_like.post("/ui/session", json={"key": MASTER_KEY})
    assert response.status_code == 201
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tollway_session=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path", "samesite"} <= flags
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # plain HTTP here; see the next test for TLS
    assert response.json()["role"] == "admin"
    assert MASTER_KEY not in response.text
    for path in ("/ui", "/ui/keys", "/ui/login", "/ui/static/js/app.js", "/ui/session"):
        headers = browser_like.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"


def test_cookie_is_secure_when_configured(fake: FakeUpstream, tmp_path: Path) -> None:
    settings = ui_settings(fake, tmp_path, ui={"cookie_secure": True, "session_ttl": 600})
    with running_gateway(settings) as gateway:
        response = httpx.post(gateway.url + "/ui/session", json={"key": MASTER_KEY})
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("__host-tollway_session=")
    assert "; secure" in cookie and "max-age=600" in cookie and "httponly" in cookie


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_cookie_is_secure_over_tls(fake: FakeUpstream, tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(ui_settings(fake, tmp_path / "data")),
        log_config=None,
        lifespan="on",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the gateway did not start"
            time.sleep(0.01)
        trust = ssl.create_default_context(cafile=str(cert_file))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust) as client:
            response = client.post("/ui/session", json={"key": MASTER_KEY})
            assert response.status_code == 201
            cookie = response.headers["set-cookie"].lower()
            assert cookie.startswith("__host-tollway_session=")
            assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert "path=/" in cookie and "domain=" not in cookie
            # The browser sends it back over TLS, and the session reads it.
            assert client.get("/ui/session").json()["role"] == "admin"
    finally:
        server.should_exit = True
        thread.join(15)


def test_writes_need_the_csrf_token(browser_like: httpx.Client) -> None:
    csrf = sign_in(browser_like)
    assert browser_like.get("/api/v1/keys").status_code == 200  # reads need no token
    body = {"name": "csrf test"}
    missing = browser_like.post("/api/v1/keys", json=body)
    assert missing.status_code == 403
    assert "csrf" in missing.json()["error"]["message"].lower()
    wrong = browser_like.post("/api/v1/keys", json=body, headers={"x-csrf-token": "0" * 64})
    assert wrong.status_code == 403
    made = browser_like.post("/api/v1/keys", json=body, headers={"x-csrf-token": csrf})
    assert made.status_code == 201, made.text
    gone = browser_like.delete(f"/api/v1/keys/{made.json()['id']}")
    assert gone.status_code == 403  # DELETE is a write too
    # Signing out is a write as well.
    assert browser_like.delete("/ui/session").status_code == 403
    assert browser_like.get("/ui/session").status_code == 200


def test_sign_out_ends_the_session_everywhere(browser_like: httpx.Client) -> None:
    csrf = sign_in(browser_like)
    token = browser_like.cookies["tollway_session"]
    assert browser_like.delete("/ui/session", headers={"x-csrf-token": csrf}).status_code == 204
    # The same cookie, replayed, opens nothing.
    replay = httpx.get(
        str(browser_like.base_url) + "/api/v1/keys", cookies={"tollway_session": token}
    )
    assert replay.status_code == 401
    assert browser_like.get("/ui").status_code == 303


def test_sign_in_refuses_bad_keys_and_forms(
    browser_like: httpx.Client, ui_gateway: GatewayServer
) -> None:
    assert browser_like.post("/ui/session", json={"key": "sk-tw-nope"}).status_code == 401
    with admin_api(ui_gateway.url) as api:
        virtual = api.post("/keys", json={"name": "not an admin"}).json()["key"]
    assert browser_like.post("/ui/session", json={"key": virtual}).status_code == 401
    # What a cross-site form could send: no JSON, no sign-in (login CSRF).
    form = browser_like.post("/ui/session", data={"key": MASTER_KEY})
    assert form.status_code == 415
    cross = browser_like.post(
        "/ui/session", json={"key": MASTER_KEY}, headers={"sec-fetch-site": "cross-site"}
    )
    assert cross.status_code == 403
    assert "set-cookie" not in cross.headers


def test_expired_sessions_end(browser_like: httpx.Client, ui_gateway: GatewayServer) -> None:
    sign_in(browser_like)
    engine = create_engine(f"sqlite:///{ui_gateway.settings.data_dir / 'tollway.db'}")
    with engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(seconds=1)
        connection.execute(update(UiSession).values(expires_at=past))
    engine.dispose()
    assert browser_like.get("/api/v1/keys").status_code == 401
    assert browser_like.get("/ui/keys").status_code == 303


def test_a_revoked_admin_keys_sessions_end(
    browser_like: httpx.Client, ui_gateway: GatewayServer
) -> None:
    with admin_api(ui_gateway.url) as api:
        made = api.post("/admin-keys", json={"name": "ops", "role": "operator"}).json()
        csrf = sign_in(browser_like, made["key"])
        session = browser_like.get("/ui/session").json()
        assert session["role"] == "operator"
        assert session["actor"] == f"admin_key:{made['id']}"
        # An operator may create keys, not read the audit log.
        headers = {"x-csrf-token": csrf}
        assert browser_like.post("/api/v1/keys", json={"name": "o"}, headers=headers).is_success
        assert browser_like.get("/api/v1/audit").status_code == 403
        assert api.delete(f"/admin-keys/{made['id']}").status_code == 200
    assert browser_like.get("/api/v1/keys").status_code == 401
    assert browser_like.get("/ui").status_code == 303


def test_a_rotated_master_key_ends_its_sessions(fake: FakeUpstream, tmp_path: Path) -> None:
    with running_gateway(ui_settings(fake, tmp_path)) as gateway:
        client = httpx.Client(base_url=gateway.url)
        sign_in(client)
        token = client.cookies["tollway_session"]
    rotated = ui_settings(fake, tmp_path, master_key="sk-tw-master-rotated-0123456789ab")
    with running_gateway(rotated) as gateway:
        answer = httpx.get(gateway.url + "/api/v1/keys", cookies={"tollway_session": token})
        assert answer.status_code == 401


def test_sign_ins_and_outs_are_audited(
    browser_like: httpx.Client, ui_gateway: GatewayServer
) -> None:
    csrf = sign_in(browser_like)
    browser_like.delete("/ui/session", headers={"x-csrf-token": csrf})
    with admin_api(ui_gateway.url) as api:
        actions = [entry["action"] for entry in api.get("/audit", params={"limit": 5}).json()]
        assert actions[:2] == ["ui.signed_out", "ui.signed_in"]
        assert api.get("/audit/verify").json()["ok"] is True


def test_the_ui_is_only_files_from_the_package(browser_like: httpx.Client) -> None:
    assets = Assets()
    assert {"index.html", "login.html", "style.css", "js/app.js"} <= set(assets.names())
    remote = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)
    for name in assets.names():
        asset = assets.get(name)
        assert asset is not None
        # The SVG namespace names no place to fetch from; example.com is a placeholder.
        text = asset.body.decode().replace("http://www.w3.org/2000/svg", "")
        found = [m.group(0) for m in remote.finditer(text) if "example.com" not in m.group(0)]
        assert not found, (name, found)
        answer = browser_like.get(f"/ui/static/{name}")
        assert answer.status_code == 200 and answer.content == asset.body
        again = browser_like.get(f"/ui/static/{name}", headers={"if-none-match": asset.etag})
        assert again.status_code == 304
    assert browser_like.get("/ui/static/../settings.py").status_code == 404
    assert browser_like.get("/ui/static/nothing.js").status_code == 404
