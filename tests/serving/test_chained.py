"""Tollway in front of Tollway over plain HTTP on a private address: the outer gateway
(what a sandbox's egress proxy talks to) has the inner one as its OpenAI and Anthropic
provider, with a virtual key of the inner one as its credential. Calls and streams pass
through both in either dialect; both meter the same tokens and cost; the inner
gateway's refusal comes back as a clean error in the client's dialect."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from checks import openai_error
from fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, TEXT, FakeUpstream
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE_UPSTREAM,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
    GatewayServer,
    gateway_settings,
    running_gateway,
)
from tollway.settings import Settings

OUTER_MASTER_KEY = "sk-tw-master-outer-3c9e1a7b5d2f4086"
PRICE = {"input_mtok": "2", "output_mtok": "8"}
MESSAGES = [{"role": "user", "content": "Say hello."}]
EXPECTED_COST = (PROMPT_TOKENS * 2 + COMPLETION_TOKENS * 8) / Decimal(1_000_000)


@pytest.fixture(scope="module")
def inner(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The inner gateway, in front of the fake upstream, with priced models."""
    models = [
        {"name": "gpt-inner", "provider": "oa", "model": GPT_UPSTREAM, "price": PRICE},
        {"name": "claude-inner", "provider": "an", "model": CLAUDE_UPSTREAM, "price": PRICE},
    ]
    settings = gateway_settings(fake_server, tmp_path_factory.mktemp("inner"), models=models)
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def inner_key(inner: GatewayServer) -> Iterator[dict[str, Any]]:
    """A virtual key of the inner gateway, as an outer gateway's provider credential."""
    with httpx.Client(base_url=inner.url + "/api/v1", headers=_master(MASTER_KEY)) as api:
        response = api.post("/keys", json={"name": "outer-gateway", "max_budget_usd": 5})
        assert response.status_code == 201, response.text
        yield response.json()


@pytest.fixture
def outer(
    inner: GatewayServer, inner_key: dict[str, Any], tmp_path: Path
) -> Iterator[GatewayServer]:
    """The outer gateway: the inner one is its provider, by plain HTTP."""
    secret = inner_key["key"]
    settings = Settings(
        master_key=OUTER_MASTER_KEY,
        data_dir=tmp_path / "outer",
        retry={"attempts": 0},
        providers={
            "inner-openai": {"type": "openai", "base_url": inner.url + "/v1", "api_key": secret},
            "inner-anthropic": {"type": "anthropic", "base_url": inner.url, "api_key": secret},
        },
        models=[
            {"name": "gpt-outer", "provider": "inner-openai", "model": "gpt-inner", "price": PRICE},
            {
                "name": "claude-outer",
                "provider": "inner-anthropic",
                "model": "claude-inner",
                "price": PRICE,
            },
        ],
    )
    with running_gateway(settings) as server:
        yield server


def _master(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def spend_of_key(inner: GatewayServer, key_id: str) -> dict[str, Any]:
    """The inner gateway's spend totals for one of its keys."""
    with httpx.Client(base_url=inner.url + "/api/v1", headers=_master(MASTER_KEY)) as api:
        response = api.get("/spend", params={"key": key_id})
        assert response.status_code == 200, response.text
        totals: dict[str, Any] = response.json()["totals"]
        return totals


def test_calls_and_streams_pass_through_two_gateways_and_both_meter_them(
    outer: GatewayServer, inner: GatewayServer, inner_key: dict[str, Any], fake: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=outer.url + "/v1", api_key=OUTER_MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-outer", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert Decimal(raw.headers["x-tollway-cost-usd"]) == EXPECTED_COST
    # The real upstream sees the inner gateway's credential and upstream model only.
    received = fake.last()
    assert received.body["model"] == GPT_UPSTREAM
    assert received.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"

    chunks = list(
        client.chat.completions.create(
            model="gpt-outer",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS
    client.close()

    claude = anthropic.Anthropic(base_url=outer.url, api_key=OUTER_MASTER_KEY, max_retries=0)
    with claude.messages.stream(model="claude-outer", max_tokens=50, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
    assert final.usage.output_tokens == COMPLETION_TOKENS
    claude.close()
    received = fake.last()
    assert received.path == "/v1/messages"
    assert received.body["model"] == CLAUDE_UPSTREAM
    assert received.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY

    # The inner gateway metered the same three calls against the outer one's key.
    totals = spend_of_key(inner, inner_key["id"])
    assert totals["requests"] == 3
    assert (totals["input_tokens"], totals["output_tokens"]) == (
        3 * PROMPT_TOKENS,
        3 * COMPLETION_TOKENS,
    )
    assert Decimal(str(totals["cost_usd"])) == 3 * EXPECTED_COST


def test_a_key_the_inner_gateway_revoked_is_a_clean_error_at_the_outer_one(
    outer: GatewayServer, inner: GatewayServer, inner_key: dict[str, Any]
) -> None:
    with httpx.Client(base_url=inner.url + "/api/v1", headers=_master(MASTER_KEY)) as api:
        assert api.delete(f"/keys/{inner_key['id']}").status_code in (200, 204)
    with httpx.Client(base_url=outer.url, headers=_master(OUTER_MASTER_KEY)) as client:
        response = client.post(
            "/v1/chat/completions", json={"model": "gpt-outer", "messages": MESSAGES}
        )
    assert response.status_code == 502
    error = openai_error(response, 502)
    assert "rejected the gateway's credentials" in error["message"]
    assert inner_key["key"] not in response.text
