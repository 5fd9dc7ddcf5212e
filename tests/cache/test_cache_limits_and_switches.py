"""The response cache with rate limits (a hit is a request), TTL precedence (project,
then model, then gateway) and kill switches (a switched-off model is not answered from
memory)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fake_upstream import FakeUpstream
from harness import (
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    GatewayServer,
    gateway_settings,
    running_gateway,
)

SHORT = "gpt-short-ttl"
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def cached(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    data = tmp_path_factory.mktemp("cache-limits-cache")
    settings = gateway_settings(
        fake_server,
        data,
        cache={"enabled": True},
        models=[
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": SHORT, "provider": "oa", "model": GPT_UPSTREAM, "cache_ttl": 1},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
        ],
    )
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def gw(cached: GatewayServer, fake: FakeUpstream) -> GatewayServer:
    return cached


def _project(gw: GatewayServer, **policy: Any) -> str:
    with httpx.Client(base_url=gw.url + "/api/v1", headers=ADMIN) as admin:
        name = f"cache-limits-{uuid.uuid4().hex[:10]}"
        answer = admin.post("/projects", json={"name": name, **policy})
        assert answer.status_code in (200, 201), answer.text
        project: str = answer.json()["id"]
        return project


def _key(gw: GatewayServer, project: str, **fields: Any) -> str:
    with httpx.Client(base_url=gw.url + "/api/v1", headers=ADMIN) as admin:
        body = {"name": f"k-{uuid.uuid4().hex[:8]}", "project": project, **fields}
        answer = admin.post("/keys", json=body)
        assert answer.status_code in (200, 201), answer.text
        key: str = answer.json()["key"]
        return key


def _chat(gw: GatewayServer, key: str, model: str = GPT, **extra: Any) -> httpx.Response:
    question = f"q {extra.pop('tag', '')}"
    body = {
        "model": model,
        "temperature": 0,
        "messages": [{"role": "user", "content": question}],
        **extra,
    }
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        return http.post(
            "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body
        )


def test_rate_limits_apply_to_cache_hits(gw: GatewayServer, fake: FakeUpstream) -> None:
    """A key limited to 2 requests a minute makes 20: every hit skips the limiter."""
    key = _key(gw, _project(gw), rpm=2)
    statuses = [_chat(gw, key, tag="rpm").status_code for _ in range(20)]
    assert len(fake.requests) == 1  # the rest were hits
    assert statuses.count(429) >= 18, statuses


def test_a_project_turning_the_cache_on_keeps_the_model_ttl(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """The model says 1 s; the project said nothing about the TTL (enabled only), yet its
    schema default (3600 s) wins over the model's and the gateway's own."""
    key = _key(gw, _project(gw, cache={"enabled": True}))
    first = _chat(gw, key, SHORT, tag="ttl")
    assert first.headers["x-tollway-cache"] == "miss"
    time.sleep(1.5)
    again = _chat(gw, key, SHORT, tag="ttl")
    assert again.headers["x-tollway-cache"] == "miss", "kept past the model's cache_ttl"


def test_a_switched_off_provider_is_not_answered_from_the_cache(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    key = _key(gw, _project(gw))
    assert _chat(gw, key, tag="switch").headers["x-tollway-cache"] == "miss"
    with httpx.Client(base_url=gw.url + "/api/v1", headers=ADMIN) as admin:
        assert admin.patch("/switches", json={"providers": {"oa": False}}).status_code == 200
    try:
        answer = _chat(gw, key, tag="switch")
    finally:
        with httpx.Client(base_url=gw.url + "/api/v1", headers=ADMIN) as admin:
            admin.patch("/switches", json={"providers": {"oa": True}})
    assert answer.status_code == 503, (answer.status_code, answer.headers.get("x-tollway-cache"))
