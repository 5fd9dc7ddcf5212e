"""``GET /api/v1/providers``: providers (never their credentials) and each deployment's
health in this process; readable by the viewer role, closed to everyone else."""

from __future__ import annotations

import httpx
import pytest
from routing_support import (
    ALL_UPSTREAM_KEYS,
    Gateway,
    StartGateway,
    Upstreams,
    deployment,
    model,
)

from fake_upstream import Fail
from harness import MASTER_KEY

MODELS = [
    model(
        "pair",
        deployments=[
            deployment("oa-a", "pair-a", weight=1000),
            deployment("an-b", "pair-b", weight=0.001, rpm=100, max_parallel=4),
        ],
    ),
    model("single", "an-a"),
    {"name": "glob-*", "provider": "oa-c"},
]
DEPLOYMENT_FIELDS = {
    "model_name",
    "provider",
    "model",
    "weight",
    "state",
    "in_flight",
    "requests",
    "failures",
    "error_rate",
    "latency_ewma_ms",
    "last_error",
}


@pytest.fixture
def gw(start: StartGateway) -> Gateway:
    return start(MODELS, retry={"attempts": 0})


def _deployments(report: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
    out = {}
    for provider in report["providers"]:  # type: ignore[attr-defined]
        for item in provider["deployments"]:
            out[(item["model_name"], item["provider"])] = item
    return out


def test_lists_providers_and_deployments_without_credentials(gw: Gateway, ups: Upstreams) -> None:
    with gw.admin() as admin:
        response = admin.get("/providers")
    assert response.status_code == 200
    for secret in ALL_UPSTREAM_KEYS:
        assert secret not in response.text
        assert secret[-8:] not in response.text
    assert "SECRET" not in response.text
    assert MASTER_KEY not in response.text
    report = response.json()
    providers = {p["name"]: p for p in report["providers"]}
    assert set(providers) == {"oa-a", "oa-b", "oa-c", "an-a", "an-b", "an-c", "dead"}
    assert providers["oa-a"]["type"] == "openai"
    assert providers["an-b"]["dialect"] == "anthropic"
    assert providers["oa-a"]["base_url"] == ups.a.url + "/v1"
    assert all("api_key" not in p for p in providers.values())

    deployments = _deployments(report)
    assert set(deployments) == {("pair", "oa-a"), ("pair", "an-b"), ("single", "an-a")}
    for item in deployments.values():
        assert set(item) >= DEPLOYMENT_FIELDS
        assert item["state"] == "closed"
        assert (item["requests"], item["failures"], item["error_rate"]) == (0, 0, 0.0)
        assert item["latency_ewma_ms"] is None
    assert deployments[("pair", "oa-a")]["model"] == "pair-a"
    assert deployments[("pair", "an-b")]["weight"] == 0.001


def test_deployment_statistics_follow_traffic(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(500))
    assert gw.chat("pair").status_code == 502
    assert gw.chat("pair").status_code == 200
    assert gw.messages("glob-7").status_code == 200  # a pattern's plan appears once used
    deployments = _deployments(gw.providers())
    pair = deployments[("pair", "oa-a")]
    assert (pair["requests"], pair["failures"], pair["in_flight"]) == (2, 1, 0)
    assert pair["error_rate"] == 0.5
    assert pair["last_error"] == "upstream_error"
    assert isinstance(pair["latency_ewma_ms"], float) and pair["latency_ewma_ms"] > 0
    assert deployments[("glob-7", "oa-c")]["requests"] == 1


def test_viewer_may_read_it(gw: Gateway) -> None:
    with gw.admin() as admin:
        created = admin.post("/admin-keys", json={"name": "routing viewer", "role": "viewer"})
    assert created.status_code == 201, created.text
    with gw.admin(created.json()["key"]) as viewer:
        response = viewer.get("/providers")
    assert response.status_code == 200
    assert _deployments(response.json())


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer sk-tw-not-a-real-key"}, {"x-api-key": "nope"}],
    ids=["no-key", "unknown-bearer", "unknown-x-api-key"],
)
def test_unauthenticated_callers_get_401(gw: Gateway, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=gw.url, timeout=5) as client:
        response = client.get("/api/v1/providers", headers=headers)
    assert response.status_code == 401
    assert "SECRET" not in response.text


def test_a_virtual_key_may_not_read_it(gw: Gateway) -> None:
    with gw.admin() as admin:
        created = admin.post("/keys", json={"name": "routing client", "ttl": "1h"})
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    with httpx.Client(base_url=gw.url, timeout=5) as client:
        response = client.get("/api/v1/providers", headers={"authorization": f"Bearer {secret}"})
    assert response.status_code == 401


def test_credentials_in_a_base_url_are_not_shown(start: StartGateway, ups: Upstreams) -> None:
    token = "vllm-SECRET-token-5e7a9c"
    gw = start(
        [model("local", "local")],
        extra_providers={
            "local": {"type": "openai", "base_url": f"http://proxyuser:{token}@{ups.c.url[7:]}/v1"}
        },
    )
    report = gw.providers()
    local = next(p for p in report["providers"] if p["name"] == "local")
    assert local["base_url"]  # still says where it points...
    assert token not in str(report)  # ...without the password
