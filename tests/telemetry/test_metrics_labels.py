"""Label values stay bounded whatever clients send: models only as configured, projects
up to ``metrics.max_projects``, deployments a glob made on the fly under one series."""

from __future__ import annotations

from pathlib import Path

import httpx
from metrics_support import (
    GPT,
    MASTER_KEY,
    bearer,
    chat,
    config,
    created,
    eventually,
    management,
    post,
    scrape,
    total,
    value,
)

from fake_upstream import Fail, FakeUpstream
from harness import running_gateway
from tollway.settings import Settings

CHAT = "chat.completions"


def test_client_controlled_values_never_become_series(fake: FakeUpstream, tmp_path: Path) -> None:
    values = config(tmp_path / "data", fake, metrics={"max_projects": 1, "public": True})
    values["models"].append({"name": "claude-*", "provider": "an"})
    with running_gateway(Settings(**values)) as gateway:
        url = gateway.url
        with management(url) as api:
            keys = []
            for name in ("first", "second"):
                project = created(api.post("/projects", json={"name": name}))
                keys.append(
                    created(api.post("/keys", json={"name": name, "project": project["id"]}))["key"]
                )
        first, second = keys
        assert chat(url, first).status_code == 200
        assert chat(url, second).status_code == 200  # past max_projects: "_other"
        assert chat(url, first).status_code == 200
        wild = {
            "model": "claude-anything-7",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
        }
        assert post(url, "/v1/messages", first, wild).status_code == 200
        assert chat(url, first, model="no-such-model").status_code == 404
        with httpx.Client(timeout=10.0) as client:
            anonymous = client.post(url + "/v1/chat/completions", json={"model": GPT})
        assert anonymous.status_code == 401
        # A glob's deployment that fails opens a breaker no configured label names.
        fake.script(Fail(status=500), match="claude-broken-1")
        broken = {**wild, "model": "claude-broken-1"}
        assert post(url, "/v1/messages", first, broken).status_code == 502

        samples = scrape(url)
        tokens = "tollway_tokens_total"
        labels = {"type": "input", "model": GPT, "provider": "oa"}
        assert value(samples, tokens, project="first", **labels) == 2 * 17
        assert value(samples, tokens, project="_other", **labels) == 17
        assert total(samples, tokens, project="second") == 0
        # A glob entry labels every name it matched with itself; the upstream model id a
        # client chose is not a series either.
        requests = "tollway_requests_total"
        assert (
            value(
                samples,
                requests,
                endpoint="messages",
                model="claude-*",
                provider="an",
                status="200",
            )
            == 1
        )
        assert total(samples, "gen_ai_client_token_usage_count", gen_ai_request_model="_other") == 2
        other = {"endpoint": CHAT, "model": "_other", "provider": "_none", "status": "404"}
        assert value(samples, requests, **other) == 1
        assert (
            value(samples, requests, endpoint=CHAT, model="_none", provider="_none", status="401")
            == 1
        )
        assert value(samples, "tollway_circuit_open", deployment="an/_other") == 1
        every_label_value = {v for _, found in samples for _, v in found}
        assert (
            not {"claude-anything-7", "claude-broken-1", "no-such-model", "second"}
            & every_label_value
        )
        assert not any(v.startswith("sk-") for v in every_label_value)


def test_scrapes_reuse_what_they_read_for_cache_seconds(fake: FakeUpstream, tmp_path: Path) -> None:
    def limit(url: str) -> float:
        samples = scrape(url, bearer(MASTER_KEY))
        return value(samples, "tollway_budget_limit_usd", project="later")

    # Read once, then reused for the period: the project made since is not there yet...
    values = config(tmp_path / "long", fake, metrics={"cache_seconds": 3600})
    with running_gateway(Settings(**values)) as gateway:
        assert limit(gateway.url) == 0
        with management(gateway.url) as api:
            created(api.post("/projects", json={"name": "later", "max_budget_usd": "5"}))
        assert [limit(gateway.url) for _ in range(5)] == [0] * 5
    # ... and read again once the period is over.
    values = config(tmp_path / "short", fake, metrics={"cache_seconds": 0.5})
    with running_gateway(Settings(**values)) as gateway:
        assert limit(gateway.url) == 0
        with management(gateway.url) as api:
            created(api.post("/projects", json={"name": "later", "max_budget_usd": "5"}))
        assert eventually(lambda: limit(gateway.url) == 5)
