"""CORS for browser apps calling the proxy with a project's key: preflights answered for
origins some project allows, the call itself checked against the key's project, and
everything else denied (the default)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from fake_upstream import FakeUpstream
from harness import GPT, MASTER_KEY, GatewayServer, gateway_settings, running_gateway

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
CHAT = {"model": GPT, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = gateway_settings(fake_server, tmp_path_factory.mktemp("cors"))
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def keys(gw: GatewayServer, fake: FakeUpstream) -> dict[str, str]:
    """A key of a project allowing APP, and one of a project allowing nothing."""
    admin = httpx.Client(
        base_url=gw.url + "/api/v1", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    out = {}
    for label, origins in (("app", [APP]), ("closed", None)):
        body = {"name": f"cors-{label}-{uuid.uuid4().hex[:8]}", "cors_origins": origins}
        project = admin.post("/projects", json=body).json()
        out[label] = admin.post("/keys", json={"name": label, "project": project["id"]}).json()[
            "key"
        ]
    return out


def _preflight(gw: GatewayServer, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        gw.url + "/v1/chat/completions",
        headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": "authorization, content-type, x-stainless-os",
        },
    )


def test_preflight_for_an_allowed_origin(gw: GatewayServer, keys: dict[str, str]) -> None:
    answer = _preflight(gw, APP)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == APP
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert (
        answer.headers["access-control-allow-headers"]
        == "authorization, content-type, x-stainless-os"
    )
    assert "origin" in answer.headers["vary"].lower()


def test_preflight_for_any_other_origin_is_denied(gw: GatewayServer, keys: dict[str, str]) -> None:
    answer = _preflight(gw, OTHER)
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers
    assert answer.json()["error"]["code"] == "origin_not_allowed"
    assert _preflight(gw, APP, method="DELETE").status_code == 403


def test_allowed_origin_call_carries_cors_headers(
    gw: GatewayServer, keys: dict[str, str], fake: FakeUpstream
) -> None:
    answer = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {keys['app']}", "origin": APP},
        json=CHAT,
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    exposed = answer.headers["access-control-expose-headers"]
    assert "x-request-id" in exposed and "x-tollway-cost-usd" in exposed
    assert len(fake.requests) == 1


def test_the_call_is_checked_against_the_keys_own_project(
    gw: GatewayServer, keys: dict[str, str], fake: FakeUpstream
) -> None:
    # APP is allowed by some project, not by this key's: refused before anything is spent.
    for key, origin in ((keys["closed"], APP), (keys["app"], OTHER), (MASTER_KEY, APP)):
        answer = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}", "origin": origin},
            json=CHAT,
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in answer.headers
    assert fake.requests == []


def test_calls_without_an_origin_are_not_cors(gw: GatewayServer, keys: dict[str, str]) -> None:
    answer = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {keys['closed']}"},
        json=CHAT,
    )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_policy_change_reaches_the_next_preflight(
    gw: GatewayServer, keys: dict[str, str]
) -> None:
    late = "https://late.example.org"
    assert _preflight(gw, late).status_code == 403
    admin = httpx.Client(
        base_url=gw.url + "/api/v1", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    project = admin.post(
        "/projects", json={"name": f"late-{uuid.uuid4().hex[:8]}", "cors_origins": [late]}
    )
    assert project.status_code == 201, project.text
    assert _preflight(gw, late).status_code == 204
