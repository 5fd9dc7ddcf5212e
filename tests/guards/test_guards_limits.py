"""The limits guard on each payload shape: endpoints, message counts, tools, input size."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.dialects.endpoints import Endpoint
from tollway.guards.base import RequestView
from tollway.guards.limits import LimitsGuard, message_count, tool_names
from tollway.guards.texts import request_texts
from tollway.metering.tokens import TokenCounter


def view(endpoint: str, payload: dict[str, Any]) -> RequestView:
    texts = tuple(slot.get() for slot in request_texts(endpoint, payload))
    return RequestView(endpoint, payload, texts)


def kinds(guard: LimitsGuard, endpoint: str, payload: dict[str, Any]) -> list[str]:
    return [finding.kind for finding in guard.check(view(endpoint, payload))]


CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "db_query", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "rows"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
        {"type": "custom", "custom": {"name": "code_exec"}},
    ],
    "functions": [{"name": "legacy_fn"}],
}
RESPONSES = {
    "model": "m",
    "input": [
        {"role": "user", "content": "u"},
        {"type": "function_call", "call_id": "c", "name": "db_query", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "rows"},
    ],
    "tools": [
        {"type": "function", "name": "get_weather", "parameters": {}},
        {"type": "web_search_preview"},
        {"type": "mcp", "server_label": "github", "server_url": "https://x"},
    ],
}
MESSAGES = {
    "model": "m",
    "max_tokens": 5,
    "system": "s",
    "messages": [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "db_query", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": "rows"}],
        },
    ],
    "tools": [
        {"name": "get_weather", "input_schema": {}},
        {"type": "web_search_20250305", "name": "web_search"},
    ],
}


@pytest.mark.parametrize(
    ("endpoint", "payload", "names", "count"),
    [
        ("chat.completions", CHAT, {"get_weather", "code_exec", "legacy_fn", "db_query"}, 4),
        (
            "responses",
            RESPONSES,
            {"get_weather", "web_search_preview", "mcp:github", "db_query"},
            3,
        ),
        ("messages", MESSAGES, {"get_weather", "web_search", "db_query"}, 3),
        ("messages.count_tokens", MESSAGES, {"get_weather", "web_search", "db_query"}, 3),
        ("responses", {"model": "m", "input": "hi"}, set(), 1),
        ("completions", {"model": "m", "prompt": ["a", "b"]}, set(), 0),
        ("embeddings", {"model": "m", "input": "a"}, set(), 0),
    ],
)
def test_tool_names_and_message_counts_per_shape(
    endpoint: str, payload: dict[str, Any], names: set[str], count: int
) -> None:
    assert set(tool_names(endpoint, payload)) == names
    assert message_count(endpoint, payload) == count


@pytest.mark.parametrize(
    ("endpoint", "payload"),
    [("chat.completions", CHAT), ("responses", RESPONSES), ("messages", MESSAGES)],
)
def test_allowed_tools_by_name_and_glob(endpoint: str, payload: dict[str, Any]) -> None:
    everything = LimitsGuard({"allowed_tools": ["*"]})
    assert kinds(everything, endpoint, payload) == []
    only_weather = LimitsGuard({"allowed_tools": ["get_weather"]})
    refused = only_weather.refused_tools(view(endpoint, payload))
    assert "db_query" in refused and "get_weather" not in refused
    assert kinds(only_weather, endpoint, payload) == ["tool_not_allowed"] * len(refused)
    wide = LimitsGuard(
        {"allowed_tools": ["get_*", "db_*", "code_exec", "legacy_fn", "web_search*", "mcp:*"]}
    )
    assert kinds(wide, endpoint, payload) == []


def test_no_tools_allowed() -> None:
    guard = LimitsGuard({"allowed_tools": []})
    assert kinds(guard, "messages", MESSAGES) == ["tool_not_allowed"] * 3
    assert kinds(guard, "messages", {"model": "m", "messages": []}) == []


def test_allowed_endpoints() -> None:
    guard = LimitsGuard({"allowed_endpoints": ["chat.completions", "responses"]})
    assert kinds(guard, "chat.completions", CHAT) == []
    assert kinds(guard, "responses", RESPONSES) == []
    assert kinds(guard, "messages", MESSAGES) == ["endpoint_not_allowed"]
    assert kinds(guard, "embeddings", {"input": "x"}) == ["endpoint_not_allowed"]


@pytest.mark.parametrize(
    ("endpoint", "payload", "count"),
    [("chat.completions", CHAT, 4), ("responses", RESPONSES, 3), ("messages", MESSAGES, 3)],
)
def test_max_messages(endpoint: str, payload: dict[str, Any], count: int) -> None:
    assert kinds(LimitsGuard({"max_messages": count}), endpoint, payload) == []
    assert kinds(LimitsGuard({"max_messages": count - 1}), endpoint, payload) == ["max_messages"]


def _long_chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_max_input_tokens_passes_small_texts_without_counting() -> None:
    guard = LimitsGuard({"max_input_tokens": 100})
    assert guard.input_tokens(("é" * 50,), 100) == 100  # 100 UTF-8 bytes: within the limit
    assert kinds(guard, "chat.completions", _long_chat("é" * 50)) == []


def test_max_input_tokens_estimate_past_the_byte_bound() -> None:
    guard = LimitsGuard({"max_input_tokens": 100})
    assert guard.input_tokens(("word " * 80,), 100) == 100  # 400 bytes / 4
    assert kinds(guard, "chat.completions", _long_chat("word " * 80)) == []
    assert kinds(guard, "chat.completions", _long_chat("word " * 81)) == ["max_input_tokens"]
    strict = LimitsGuard({"max_input_tokens": 100, "bytes_per_token": 2})
    assert kinds(strict, "chat.completions", _long_chat("word " * 80)) == ["max_input_tokens"]


def test_max_input_tokens_counts_exactly_with_the_projects_tokenizer() -> None:
    counter = TokenCounter()
    guard = LimitsGuard({"max_input_tokens": 100}, tokens=counter)
    text = " word" * 100  # 100 tokens in o200k, 500 bytes
    assert counter.count_text(text) == 100
    assert kinds(guard, "chat.completions", _long_chat(text)) == []
    assert kinds(guard, "chat.completions", _long_chat(text + " word")) == ["max_input_tokens"]
    # Texts across every slot count: system, tool results, Messages blocks.
    texts = ("a" * 60, "b" * 60)
    assert guard.input_tokens(texts, 100) == sum(counter.count_text(t) for t in texts)


def test_all_limits_at_once() -> None:
    guard = LimitsGuard(
        {
            "max_input_tokens": 1,
            "max_messages": 1,
            "allowed_tools": [],
            "allowed_endpoints": ["responses"],
        }
    )
    assert kinds(guard, "chat.completions", CHAT) == [
        "endpoint_not_allowed",
        "max_messages",
        "max_input_tokens",
        *["tool_not_allowed"] * 4,
    ]


def test_endpoint_members_work_like_their_values() -> None:
    guard = LimitsGuard({"allowed_endpoints": ["responses"], "max_messages": 2})
    assert guard.check(RequestView(Endpoint.RESPONSES, RESPONSES, ())) == guard.check(
        RequestView("responses", RESPONSES, ())
    )
    assert [f.kind for f in guard.check(RequestView(Endpoint.MESSAGES, MESSAGES, ()))] == [
        "endpoint_not_allowed",
        "max_messages",
    ]
