"""Fallbacks: another model answers when a model's deployments fail, across providers
(the gateway translates OpenAI <-> Anthropic both ways, streamed or not, tool calls
included), and a prompt too long for a model goes to its ``context_fallbacks``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from routing_support import (
    ANTHROPIC_TOOL_ID,
    ANTHROPIC_TOOLS,
    AUTH,
    MESSAGES,
    OPENAI_TOOL_ID,
    OPENAI_TOOLS,
    TOOL_ARGS,
    TOOL_INPUT_TOKENS,
    TOOL_NAME,
    TOOL_OUTPUT_TOKENS,
    TOOL_TEXT,
    Gateway,
    StartGateway,
    Upstreams,
    anthropic_tool_reply,
    model,
    openai_tool_reply,
    requests_to,
)

from checks import anthropic_error, assert_no_leak, openai_error
from fake_upstream import TEXT, Fail, Reset

CHAT = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"

MODELS = [
    # Primaries on fake A; their fallbacks on fake B, served by the other provider.
    model("claude-main", "an-a", fallbacks=["gpt-back"]),
    model("gpt-main", "oa-a", fallbacks=["claude-back"]),
    model("gpt-back", "oa-b"),
    model("claude-back", "an-b"),
    # A chain: the first fallback fails too, the second answers.
    model("gpt-chain", "oa-a", fallbacks=["claude-back", "gpt-last"]),
    model("gpt-last", "oa-c"),
    # Context windows.
    model("gpt-small", "oa-a", context_fallbacks=["gpt-large"], fallbacks=["claude-back"]),
    model("gpt-large", "oa-b"),
    model("claude-small", "an-a", context_fallbacks=["gpt-large"]),
    model("gpt-no-room", "oa-a", fallbacks=["gpt-back"]),
]
# Which provider, path and upstream model serve each primary's fallback.
FALLBACK_OF = {
    "claude-main": ("oa-b", CHAT, "gpt-back-up"),
    "gpt-main": ("an-b", MESSAGES_PATH, "claude-back-up"),
}
PRIMARY_PATH = {"claude-main": MESSAGES_PATH, "gpt-main": CHAT}


@pytest.fixture(scope="module")
def gw(start_shared: StartGateway) -> Gateway:
    return start_shared(MODELS, retry={"attempts": 1})


@pytest.fixture
def oai(gw: Gateway) -> Iterator[Any]:
    client = gw.openai()
    yield client
    client.close()


@pytest.fixture
def ant(gw: Gateway) -> Iterator[anthropic.Anthropic]:
    client = gw.anthropic()
    yield client
    client.close()


def _script_fallback(ups: Upstreams, primary: str, stream: bool) -> None:
    """Primary deployment (fake A) down; the fallback (fake B) answers with a tool call."""
    ups.a.script(Fail(500), Reset())
    _, path, upstream = FALLBACK_OF[primary]
    reply = openai_tool_reply if path == CHAT else anthropic_tool_reply
    ups.b.script(reply(upstream, stream), path=path)


def _check_upstreams(ups: Upstreams, primary: str) -> None:
    _, path, upstream = FALLBACK_OF[primary]
    assert requests_to(ups.a, PRIMARY_PATH[primary]) == 2  # first try + one retry
    assert requests_to(ups.b) == 1
    received = ups.b.last(path)
    assert received.body["model"] == upstream
    # The tool definitions were translated for the fallback's provider.
    if path == CHAT:
        assert received.body["tools"][0]["function"]["name"] == TOOL_NAME
    else:
        assert received.body["tools"][0]["name"] == TOOL_NAME
        assert received.body["tools"][0]["input_schema"]["required"] == ["city"]


def _check_record(gw: Gateway, request_id: str, primary: str, stream: bool) -> None:
    provider, _, upstream = FALLBACK_OF[primary]
    row = gw.row(request_id)
    assert row["model"] == primary  # what the client asked for
    assert (row["provider"], row["upstream_model"]) == (provider, upstream)  # who served it
    assert row["attempts"] == 3
    assert row["status"] == 200
    assert row["input_tokens"] == TOOL_INPUT_TOKENS
    assert row["output_tokens"] == TOOL_OUTPUT_TOKENS
    assert bool(row["stream"]) is stream
    assert row["priced"] and float(row["cost_usd"]) > 0


@pytest.mark.parametrize("primary", ["claude-main", "gpt-main"])
def test_openai_client_falls_back_across_providers(
    gw: Gateway, ups: Upstreams, oai: Any, primary: str
) -> None:
    _script_fallback(ups, primary, stream=False)
    raw = oai.chat.completions.with_raw_response.create(
        model=primary, messages=MESSAGES, tools=OPENAI_TOOLS
    )
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.content == TOOL_TEXT
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id == (ANTHROPIC_TOOL_ID if primary == "gpt-main" else OPENAI_TOOL_ID)
    assert call.function.name == TOOL_NAME
    assert json.loads(call.function.arguments) == TOOL_ARGS
    assert completion.usage.prompt_tokens == TOOL_INPUT_TOKENS
    assert completion.usage.completion_tokens == TOOL_OUTPUT_TOKENS
    _check_upstreams(ups, primary)
    _check_record(gw, raw.headers["x-request-id"], primary, stream=False)


@pytest.mark.parametrize("primary", ["claude-main", "gpt-main"])
def test_openai_client_stream_falls_back_across_providers(
    gw: Gateway, ups: Upstreams, oai: Any, primary: str
) -> None:
    _script_fallback(ups, primary, stream=True)
    raw = oai.chat.completions.with_raw_response.create(
        model=primary,
        messages=MESSAGES,
        tools=OPENAI_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                if delta.function is not None:
                    entry["name"] += delta.function.name or ""
                    entry["arguments"] += delta.function.arguments or ""
    assert text == TOOL_TEXT
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == (ANTHROPIC_TOOL_ID if primary == "gpt-main" else OPENAI_TOOL_ID)
    assert calls[0]["name"] == TOOL_NAME
    assert json.loads(calls[0]["arguments"]) == TOOL_ARGS
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        TOOL_INPUT_TOKENS,
        TOOL_OUTPUT_TOKENS,
    )
    _check_upstreams(ups, primary)
    _check_record(gw, raw.headers["x-request-id"], primary, stream=True)


@pytest.mark.parametrize("primary", ["claude-main", "gpt-main"])
def test_anthropic_client_falls_back_across_providers(
    gw: Gateway, ups: Upstreams, ant: anthropic.Anthropic, primary: str
) -> None:
    _script_fallback(ups, primary, stream=False)
    raw = ant.messages.with_raw_response.create(
        model=primary, max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS
    )
    message = raw.parse()
    text, tool = message.content
    assert text.type == "text" and text.text == TOOL_TEXT
    assert tool.type == "tool_use"
    assert tool.id == (ANTHROPIC_TOOL_ID if primary == "gpt-main" else OPENAI_TOOL_ID)
    assert tool.name == TOOL_NAME
    assert tool.input == TOOL_ARGS
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == TOOL_INPUT_TOKENS
    assert message.usage.output_tokens == TOOL_OUTPUT_TOKENS
    _check_upstreams(ups, primary)
    _check_record(gw, raw.headers["x-request-id"], primary, stream=False)


@pytest.mark.parametrize("primary", ["claude-main", "gpt-main"])
def test_anthropic_client_stream_falls_back_across_providers(
    gw: Gateway, ups: Upstreams, ant: anthropic.Anthropic, primary: str
) -> None:
    _script_fallback(ups, primary, stream=True)
    with ant.messages.stream(
        model=primary, max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS
    ) as stream:
        request_id = stream.response.headers["x-request-id"]
        streamed = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert streamed == TOOL_TEXT
    text, tool = message.content
    assert text.type == "text" and text.text == TOOL_TEXT
    assert tool.type == "tool_use"
    assert tool.id == (ANTHROPIC_TOOL_ID if primary == "gpt-main" else OPENAI_TOOL_ID)
    assert tool.name == TOOL_NAME
    assert tool.input == TOOL_ARGS
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == TOOL_OUTPUT_TOKENS
    assert message.usage.input_tokens == TOOL_INPUT_TOKENS
    _check_upstreams(ups, primary)
    _check_record(gw, request_id, primary, stream=True)


def test_fallbacks_are_tried_in_order(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(503), persistent=True)
    ups.b.script(Fail(500), persistent=True)
    response = gw.chat("gpt-chain")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == TEXT
    assert requests_to(ups.a) == 2
    assert requests_to(ups.b, MESSAGES_PATH) == 2
    assert requests_to(ups.c, CHAT) == 1
    row = gw.row(response.headers["x-request-id"])
    assert (row["provider"], row["upstream_model"], row["attempts"]) == ("oa-c", "gpt-last-up", 5)
    report = gw.spend(group_by="provider")
    assert "oa-c" in {group["group"] for group in report["groups"]}


def test_every_fallback_failing_ends_in_a_clean_error(gw: Gateway, ups: Upstreams) -> None:
    for fake in ups:
        fake.script(Fail(503), persistent=True)
    response = gw.messages("gpt-chain")
    error = anthropic_error(response, 503)
    assert error["type"] == "overloaded_error"
    assert (requests_to(ups.a), requests_to(ups.b), requests_to(ups.c)) == (2, 2, 2)


# ------------------------------------------------------------------ context windows

OPENAI_TOO_LONG = (
    "This model's maximum context length is 8192 tokens. However, your messages "
    "resulted in 9120 tokens. Please reduce the length of the messages."
)
ANTHROPIC_TOO_LONG = "prompt is too long: 210533 tokens > 200000 maximum"


def test_context_length_error_goes_to_the_context_fallback(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(400, message=OPENAI_TOO_LONG), path=CHAT)
    response = gw.chat("gpt-small")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-large-up"
    assert requests_to(ups.a) == 1  # a context error is not retried on the same model
    assert requests_to(ups.b, CHAT) == 1
    assert requests_to(ups.b, MESSAGES_PATH) == 0  # the ordinary fallback is not used
    row = gw.row(response.headers["x-request-id"])
    assert (row["model"], row["provider"], row["upstream_model"]) == (
        "gpt-small",
        "oa-b",
        "gpt-large-up",
    )


def test_context_fallback_across_providers_with_the_anthropic_sdk(
    gw: Gateway, ups: Upstreams, ant: anthropic.Anthropic
) -> None:
    ups.a.script(Fail(400, message=ANTHROPIC_TOO_LONG), path=MESSAGES_PATH)
    with ant.messages.stream(model="claude-small", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"
    assert requests_to(ups.a) == 1
    assert ups.b.last(CHAT).body["model"] == "gpt-large-up"


def test_context_length_error_without_context_fallbacks_reaches_the_client(
    gw: Gateway, ups: Upstreams
) -> None:
    ups.a.script(Fail(400, message=OPENAI_TOO_LONG), path=CHAT)
    response = gw.chat("gpt-no-room")
    error = openai_error(response, 400)
    assert "maximum context length" in error["message"]
    assert requests_to(ups.a) == 1
    assert requests_to(ups.b) == 0


def test_context_fallback_cycle_is_bounded(start: StartGateway, ups: Upstreams) -> None:
    models = [
        model("ctx-a", "oa-a", context_fallbacks=["ctx-b"]),
        model("ctx-b", "oa-b", context_fallbacks=["ctx-a"]),
    ]
    try:
        gw = start(models)
    except ValueError as exc:  # refusing the cycle at startup is one right answer
        assert "context_fallbacks" in str(exc)
        return
    for fake in (ups.a, ups.b):
        fake.script(Fail(400, message=OPENAI_TOO_LONG), persistent=True)
    with httpx.Client(base_url=gw.url, timeout=1.0) as client:
        try:
            response = client.post(
                CHAT, json={"model": "ctx-a", "messages": MESSAGES}, headers=AUTH
            )
        except httpx.TimeoutException:
            response = None
    sent = len(ups.a.requests) + len(ups.b.requests)
    assert response is not None, f"no answer within 1 s after {sent} upstream requests"
    assert response.status_code == 400
    assert sent <= 3


def test_fallback_answer_leaks_nothing(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(500, message="upstream exploded with key sk-route-a-SECRET-1f8e2d7c3b6a"))
    ups.a.script(Fail(500))
    response = gw.chat("gpt-main")
    assert response.status_code == 200
    assert_no_leak(response.text)
    assert "SECRET" not in response.text
