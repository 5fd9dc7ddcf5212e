"""The cache key: canonical over the request, scoped, blind to what does not change the
answer, refusing sampled and stateful calls."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tollway.cache.directives import cache_directives
from tollway.cache.key import EXCLUDED, cache_key, sampled
from tollway.dialects.endpoints import Endpoint

CHAT: dict[str, Any] = {
    "model": "gpt-4.1",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "auto",
    "max_completion_tokens": 100,
}
MESSAGES: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 256,
    "temperature": 0.0,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hi"}],
}
RESPONSES: dict[str, Any] = {"model": "gpt-4.1", "temperature": 0, "input": "Hi"}


def key(payload: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS, **kw: Any) -> str:
    """The key, which must exist."""
    found = cache_key("proj_1", endpoint, payload, **kw)
    assert found is not None
    return found


def reorder(value: Any) -> Any:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {name: reorder(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(item) for item in value]
    return value


def test_key_is_fixed_size_hex_and_stable() -> None:
    first = key(CHAT)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert key(dict(CHAT)) == first
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 200_000}]}
    assert len(key(big)) == 64


def test_field_order_at_any_depth_does_not_matter() -> None:
    assert key(reorder(CHAT)) == key(CHAT)
    assert key(reorder(MESSAGES), Endpoint.MESSAGES) == key(MESSAGES, Endpoint.MESSAGES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("messages", [{"role": "user", "content": "Hello"}]),
        ("model", "gpt-4.1-mini"),
        ("tools", []),
        ("tool_choice", "required"),
        ("max_completion_tokens", 101),
        ("response_format", {"type": "json_object"}),
        ("seed", 7),
        ("stop", ["\n"]),
        ("logprobs", True),
        ("reasoning_effort", "high"),
        ("some_future_parameter", 1),  # unknown: part of the key (a miss, never a wrong hit)
    ],
)
def test_every_answer_changing_field_is_in_the_key(field: str, value: Any) -> None:
    assert key({**CHAT, field: value}) != key(CHAT)


def test_list_order_matters() -> None:
    swapped = {**CHAT, "messages": list(reversed(CHAT["messages"]))}
    assert key(swapped) != key(CHAT)


@pytest.mark.parametrize(
    ("endpoint", "base", "extra"),
    [
        (
            Endpoint.CHAT_COMPLETIONS,
            CHAT,
            {
                "stream": True,
                "stream_options": {"include_usage": True},
                "user": "u-1",
                "safety_identifier": "s-1",
                "metadata": {"trace": "t-1"},
                "store": True,
                "service_tier": "flex",
                "prompt_cache_key": "conv-9",
                "prompt_cache_retention": "24h",
            },
        ),
        (
            Endpoint.RESPONSES,
            RESPONSES,
            {
                "stream": True,
                "user": "u-1",
                "safety_identifier": "s-1",
                "metadata": {"trace": "t-1"},
                "service_tier": "priority",
                "prompt_cache_key": "conv-9",
            },
        ),
        (
            Endpoint.MESSAGES,
            MESSAGES,
            {"stream": True, "metadata": {"user_id": "u-1"}, "service_tier": "auto"},
        ),
        (
            Endpoint.COMPLETIONS,
            {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "temperature": 0},
            {"stream": True, "stream_options": {"include_usage": True}, "user": "u"},
        ),
        (
            Endpoint.EMBEDDINGS,
            {"model": "text-embedding-3-small", "input": ["a", "b"]},
            {"user": "u-1"},
        ),
    ],
)
def test_fields_that_do_not_change_the_answer_are_not_in_the_key(
    endpoint: Endpoint, base: dict[str, Any], extra: dict[str, Any]
) -> None:
    assert set(extra) <= EXCLUDED[endpoint]
    assert key({**base, **extra}, endpoint) == key(base, endpoint)
    for name, value in extra.items():
        assert key({**base, name: value}, endpoint) == key(base, endpoint)


def test_stream_flag_shares_one_entry() -> None:
    assert key({**CHAT, "stream": True}) == key({**CHAT, "stream": False}) == key(CHAT)


def test_responses_store_false_is_its_own_entry() -> None:
    # A stored answer can be continued with previous_response_id; an unstored one cannot.
    assert key({**RESPONSES, "store": True}, Endpoint.RESPONSES) == key(
        RESPONSES, Endpoint.RESPONSES
    )
    assert key({**RESPONSES, "store": False}, Endpoint.RESPONSES) != key(
        RESPONSES, Endpoint.RESPONSES
    )


def test_scope_isolates_tenants_and_is_required() -> None:
    a = cache_key("proj_a", Endpoint.CHAT_COMPLETIONS, CHAT)
    b = cache_key("proj_b", Endpoint.CHAT_COMPLETIONS, CHAT)
    assert a is not None and b is not None and a != b
    # A scope cannot be forged from another's through the separator.
    assert cache_key("p", "chat.completions", CHAT) != cache_key('p", "x', "chat.completions", CHAT)
    with pytest.raises(ValueError, match="scope"):
        cache_key("", Endpoint.CHAT_COMPLETIONS, CHAT)


def test_endpoint_is_part_of_the_key() -> None:
    payload = {"model": "m", "temperature": 0, "input": "Hi", "messages": [], "max_tokens": 5}
    keys = {key(payload, endpoint) for endpoint in EXCLUDED}
    assert len(keys) == len(EXCLUDED)


def test_anthropic_headers_are_part_of_the_key() -> None:
    plain = key(MESSAGES, Endpoint.MESSAGES)
    beta = key(MESSAGES, Endpoint.MESSAGES, headers={"anthropic-beta": "a-1,b-2"})
    assert beta != plain
    # A beta list is a set; other headers (request ids, user agents) do not count.
    same = {"anthropic-beta": " b-2, a-1", "x-request-id": "r-1", "user-agent": "sdk"}
    assert key(MESSAGES, Endpoint.MESSAGES, headers=same) == beta
    assert key(MESSAGES, Endpoint.MESSAGES, headers={"x-client-request-id": "1"}) == plain
    version = {"anthropic-version": "2023-06-01"}
    assert key(MESSAGES, Endpoint.MESSAGES, headers=version) != plain


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": None},  # unset: the API default, 1
        {"temperature": 0.2},
        {"temperature": "0"},
        {"top_p": 0.9},
        {"n": 2},
        {"best_of": 3},
    ],
)
def test_sampled_calls_are_refused_unless_allowed(change: dict[str, Any]) -> None:
    payload = {**CHAT, **change}
    if change.get("temperature", 0) is None:
        del payload["temperature"]
    assert sampled(payload)
    assert cache_key("proj_1", Endpoint.CHAT_COMPLETIONS, payload) is None
    allowed = cache_key("proj_1", Endpoint.CHAT_COMPLETIONS, payload, allow_sampled=True)
    assert allowed is not None and allowed != key(CHAT)


def test_deterministic_calls_are_cached() -> None:
    assert not sampled(CHAT)
    assert not sampled({**CHAT, "top_p": 1, "n": 1})
    # Messages: temperature defaults to 1 there too.
    assert cache_key("p", Endpoint.MESSAGES, {**MESSAGES, "temperature": None}) is None
    # Embeddings have no sampling.
    assert cache_key("p", Endpoint.EMBEDDINGS, {"model": "e", "input": "x"}) is not None


@pytest.mark.parametrize(
    "extra",
    [
        {"conversation": "conv_123"},
        {"background": True},
        {"prompt": {"id": "pmpt_1", "variables": {"city": "Paris"}}},
    ],
)
def test_responses_with_changing_server_state_are_not_cached(extra: dict[str, Any]) -> None:
    assert cache_key("p", Endpoint.RESPONSES, {**RESPONSES, **extra}) is None


def test_pinned_prompt_template_and_previous_response_are_cached() -> None:
    pinned = {**RESPONSES, "prompt": {"id": "pmpt_1", "version": "3"}}
    chained = {**RESPONSES, "previous_response_id": "resp_1"}
    assert key(pinned, Endpoint.RESPONSES) != key(chained, Endpoint.RESPONSES)


@pytest.mark.parametrize(
    "endpoint",
    [Endpoint.COUNT_TOKENS, Endpoint.GENERATE_CONTENT, Endpoint.CONVERSE, "no.such.endpoint"],
)
def test_other_endpoints_are_not_cached(endpoint: Endpoint | str) -> None:
    assert cache_key("p", endpoint, MESSAGES) is None


def test_too_deep_a_payload_is_not_cached() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    assert cache_key("p", Endpoint.CHAT_COMPLETIONS, {**CHAT, "extra": deep}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (True, True)),
        ("", (True, True)),
        ("no-cache", (False, True)),
        ("No-Cache", (False, True)),
        ("max-age=0", (False, True)),
        ('max-age="0"', (False, True)),
        ("max-age=60", (True, True)),
        ("no-store", (False, False)),
        ("no-cache, no-store", (False, False)),
        ("private, NO-STORE", (False, False)),
        ("max-age=abc, must-revalidate", (True, True)),
    ],
)
def test_cache_control_directives(value: str | None, expected: tuple[bool, bool]) -> None:
    headers = {} if value is None else {"cache-control": value}
    assert cache_directives(headers) == expected
    if value is not None:
        assert cache_directives({"Cache-Control": value}) == expected
