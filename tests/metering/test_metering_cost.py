"""Exact metering: every endpoint and dialect, streamed and not.

For each call the fake upstream reports scripted token counts (cached input, Anthropic
cache reads and writes, reasoning tokens); the expected cost is computed here without
the gateway (genai-prices for the upstream model id, or the configured ``price:``) and
must equal, as a Decimal, both the ``x-tollway-cost-usd`` header and the recorded
``cost_usd``; the recorded tokens must equal what the upstream reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    EMBED,
    GPT_MINI,
    HAIKU,
    HOUSE_CLAUDE,
    HOUSE_EMBED,
    HOUSE_GPT,
    INSTRUCT,
    MESSAGES,
    O3_MINI,
    SONNET,
    UPSTREAM_OF,
    Metered,
    MeteredUpstream,
    Tokens,
    anthropic_client,
    expected_cost,
    new_key,
    openai_client,
    spend_rows,
    wait_for_requests,
)

from harness import GatewayServer

PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
}


@dataclass(frozen=True)
class Case:
    """One metered call."""

    endpoint: str
    model: str
    tokens: Tokens
    stream: bool = False
    client_usage: bool = False  # the client set stream_options.include_usage itself
    delta_input: bool = False  # Anthropic message_delta repeats the input counts

    @property
    def id(self) -> str:
        parts = [self.endpoint, self.model]
        if self.stream:
            parts.append("stream+usage" if self.client_usage else "stream")
        if self.tokens.cached:
            parts.append("cached")
        if self.tokens.cache_write:
            parts.append("cachewrite")
        if self.tokens.reasoning:
            parts.append("reasoning")
        if self.tokens.input > 200_000:
            parts.append("tier2")
        if self.delta_input:
            parts.append("delta-input")
        return "-".join(parts)


PLAIN = Tokens(input=1200, output=85)
CACHED = Tokens(input=3000, cached=1024, output=40)
REASONING = Tokens(input=500, cached=128, output=900, reasoning=768)
ANTHROPIC_CACHE = Tokens(input=5000, cached=3000, cache_write=1500, output=200)
LONG_CONTEXT = Tokens(input=250_000, cached=100_000, cache_write=20_000, output=1000)

CASES = [
    Case("chat", GPT_MINI, PLAIN),
    Case("chat", GPT_MINI, CACHED),
    Case("chat", O3_MINI, REASONING),
    Case("chat", GPT_MINI, CACHED, stream=True),
    Case("chat", GPT_MINI, CACHED, stream=True, client_usage=True),
    Case("chat", O3_MINI, REASONING, stream=True),
    Case("chat", HOUSE_GPT, CACHED),
    Case("chat", HOUSE_GPT, CACHED, stream=True),
    Case("completions", INSTRUCT, PLAIN),
    Case("completions", INSTRUCT, PLAIN, stream=True),
    Case("completions", INSTRUCT, PLAIN, stream=True, client_usage=True),
    Case("embeddings", HOUSE_EMBED, Tokens(input=4096, output=0)),
    Case("responses", GPT_MINI, CACHED),
    Case("responses", O3_MINI, REASONING),
    Case("responses", O3_MINI, REASONING, stream=True),
    Case("responses", HOUSE_GPT, CACHED, stream=True),
    Case("messages", HAIKU, PLAIN),
    Case("messages", SONNET, ANTHROPIC_CACHE),
    Case("messages", SONNET, ANTHROPIC_CACHE, stream=True),
    Case("messages", SONNET, ANTHROPIC_CACHE, stream=True, delta_input=True),
    Case("messages", SONNET, LONG_CONTEXT),
    Case("messages", SONNET, LONG_CONTEXT, stream=True),
    Case("messages", HOUSE_CLAUDE, ANTHROPIC_CACHE),
    Case("messages", HOUSE_CLAUDE, ANTHROPIC_CACHE, stream=True),
]


def call(gw: GatewayServer, secret: str, case: Case) -> tuple[httpx.Headers, list[Any]]:
    """Make the call with the official SDK; returns the response headers and the
    streamed chunks (or the single parsed body)."""
    if case.endpoint in ("messages", "count_tokens"):
        with anthropic_client(gw.url, secret) as claude:
            if case.endpoint == "count_tokens":
                raw = claude.messages.with_raw_response.count_tokens(
                    model=case.model, messages=MESSAGES
                )
                return raw.headers, [raw.parse()]
            raw = claude.messages.with_raw_response.create(
                model=case.model, max_tokens=2000, messages=MESSAGES, stream=case.stream
            )
            parsed = raw.parse()
            return raw.headers, list(parsed) if case.stream else [parsed]
    with openai_client(gw.url, secret) as oai:
        extra: dict[str, Any] = {}
        if case.stream:
            extra["stream"] = True
            if case.client_usage:
                extra["stream_options"] = {"include_usage": True}
        if case.endpoint == "chat":
            raw: Any = oai.chat.completions.with_raw_response.create(
                model=case.model, messages=MESSAGES, max_completion_tokens=2000, **extra
            )
        elif case.endpoint == "completions":
            raw = oai.completions.with_raw_response.create(
                model=case.model, prompt="Say hello.", max_tokens=2000, **extra
            )
        elif case.endpoint == "embeddings":
            raw = oai.embeddings.with_raw_response.create(model=case.model, input=["Say hello."])
        else:
            raw = oai.responses.with_raw_response.create(
                model=case.model, input="Say hello.", max_output_tokens=2000, **extra
            )
        parsed = raw.parse()
        return raw.headers, list(parsed) if case.stream else [parsed]


def check_client_view(case: Case, chunks: list[Any]) -> None:
    """What the SDK saw: usage chunks only where the client asked for them."""
    if not case.stream or case.endpoint not in ("chat", "completions"):
        return
    with_usage = [chunk for chunk in chunks if getattr(chunk, "usage", None) is not None]
    if case.client_usage:
        assert len(with_usage) == 1, chunks
        usage = with_usage[0].usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            case.tokens.input,
            case.tokens.output,
        )
        assert chunks[-1] is with_usage[0]
        assert chunks[-1].choices == []
    else:
        assert with_usage == [], "the client did not ask for usage but received it"
        assert all(chunk.choices for chunk in chunks), "an empty-choices usage chunk leaked"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cost_is_exact(
    case: Case, mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, db_path: Path
) -> None:
    key = new_key(api)
    up.script(Metered(case.tokens, delta_input=case.delta_input), path=PATHS[case.endpoint])
    headers, chunks = call(mgw, key["key"], case)
    check_client_view(case, chunks)
    expected = expected_cost(case.model, case.tokens)
    assert expected > 0

    sent = up.last(PATHS[case.endpoint])
    assert sent.body["model"] == UPSTREAM_OF[case.model]
    if case.stream and case.endpoint in ("chat", "completions"):
        # The gateway asked the upstream for usage whether or not the client did.
        assert sent.body["stream_options"]["include_usage"] is True
    if not case.stream:
        assert Decimal(headers["x-tollway-cost-usd"]) == expected

    report = wait_for_requests(api, 1, key=key["id"])
    totals = report["totals"]
    assert totals["requests"] == 1, report
    assert Decimal(totals["cost_usd"]) == expected, (totals["cost_usd"], expected)
    assert totals["input_tokens"] == case.tokens.input
    assert totals["output_tokens"] == case.tokens.output
    assert totals["cache_read_tokens"] == case.tokens.cached
    assert totals["cache_write_tokens"] == case.tokens.cache_write
    assert totals["unpriced_requests"] == 0
    assert totals["estimated_requests"] == 0

    [row] = spend_rows(db_path, "request_id = ?", headers["x-request-id"])
    assert row["key_id"] == key["id"]
    assert row["status"] == 200
    assert bool(row["stream"]) is case.stream
    assert row["endpoint"] == {"chat": "chat.completions"}.get(case.endpoint, case.endpoint)
    assert row["model"] == case.model
    assert row["upstream_model"] == UPSTREAM_OF[case.model]
    assert row["reasoning_tokens"] == case.tokens.reasoning
    assert bool(row["priced"]) is True
    assert bool(row["estimated"]) is False
    assert Decimal(str(row["cost_usd"])) == expected


@pytest.mark.parametrize("model", [SONNET, GPT_MINI])
def test_count_tokens_is_free(
    model: str, mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, db_path: Path
) -> None:
    """count_tokens costs nothing: answered by an Anthropic upstream, or estimated
    locally for a model behind an OpenAI-type provider. Budgeted keys may use it."""
    key = new_key(api, max_budget_usd="0.000001")
    up.script(Metered(Tokens(input=1234)), path="/v1/messages/count_tokens")
    headers, [counted] = call(mgw, key["key"], Case("count_tokens", model, Tokens()))
    if model == SONNET:
        assert counted.input_tokens == 1234
    else:
        assert counted.input_tokens > 0
    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["requests"] == 1
    assert Decimal(report["totals"]["cost_usd"]) == 0
    assert report["totals"]["unpriced_requests"] == 0
    [row] = spend_rows(db_path, "request_id = ?", headers["x-request-id"])
    assert row["endpoint"] == "messages.count_tokens"
    assert row["status"] == 200
    assert Decimal(str(row["cost_usd"])) == 0
    assert bool(row["priced"]) is True


def test_one_record_per_call_with_exact_sum(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    """Several calls on one key: the report's total is the exact sum of the calls."""
    key = new_key(api)
    calls = [
        Case("chat", GPT_MINI, PLAIN),
        Case("messages", HAIKU, ANTHROPIC_CACHE),
        Case("embeddings", HOUSE_EMBED, Tokens(input=77, output=0)),
        Case("responses", O3_MINI, REASONING, stream=True),
    ]
    for case in calls:
        up.script(Metered(case.tokens), path=PATHS[case.endpoint])
        call(mgw, key["key"], case)
    report = wait_for_requests(api, len(calls), key=key["id"], group_by="model")
    assert report["totals"]["requests"] == len(calls)
    expected = sum((expected_cost(c.model, c.tokens) for c in calls), Decimal(0))
    assert Decimal(report["totals"]["cost_usd"]) == expected
    by_model = {group["group"]: group for group in report["groups"]}
    for case in calls:
        group = by_model[case.model]
        assert Decimal(group["cost_usd"]) == expected_cost(case.model, case.tokens)
        assert group["input_tokens"] == case.tokens.input


def test_openai_embeddings_behind_custom_base_url_are_priced(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    """An OpenAI-type provider at a base_url the price database does not know is priced
    as OpenAI: genai-prices cannot match text-embedding-3-* by model name alone."""
    key = new_key(api)
    tokens = Tokens(input=4096, output=0)
    up.script(Metered(tokens), path="/v1/embeddings")
    headers, _ = call(mgw, key["key"], Case("embeddings", EMBED, tokens))
    expected = expected_cost(EMBED, tokens)
    assert expected == Decimal("0.00008192")
    assert headers["x-tollway-cost-usd"] == "0.00008192"
    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["unpriced_requests"] == 0
    assert Decimal(report["totals"]["cost_usd"]) == expected


def test_anthropic_one_hour_cache_writes_are_priced_at_their_rate(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    """usage.cache_creation.ephemeral_1h_input_tokens are billed at the 1-hour write rate
    (claude-sonnet-4-5: $6 per MTok, not the 5-minute $3.75)."""
    key = new_key(api)
    tokens = Tokens(input=6000, cached=1000, cache_write=4000, cache_write_1h=3000, output=50)
    up.script(Metered(tokens), path="/v1/messages")
    headers, _ = call(mgw, key["key"], Case("messages", SONNET, tokens))
    expected = expected_cost(SONNET, tokens)
    # 1000 uncached x $3 + 1000 reads x $0.30 + 1000 5m writes x $3.75 + 3000 1h writes x $6
    # + 50 output x $15, per million.
    assert expected == Decimal("0.02580")
    assert Decimal(headers["x-tollway-cost-usd"]) == expected
    report = wait_for_requests(api, 1, key=key["id"])
    assert Decimal(report["totals"]["cost_usd"]) == expected
    assert report["totals"]["cache_write_tokens"] == tokens.cache_write


def test_streamed_record_has_time_to_first_token(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, db_path: Path
) -> None:
    """The record is written when the final event arrives; it still carries ttft_ms."""
    key = new_key(api)
    up.script(Metered(PLAIN), path="/v1/chat/completions")
    headers, _ = call(mgw, key["key"], Case("chat", GPT_MINI, PLAIN, stream=True))
    wait_for_requests(api, 1, key=key["id"])
    [row] = spend_rows(db_path, "request_id = ?", headers["x-request-id"])
    assert row["ttft_ms"] is not None and row["ttft_ms"] > 0
