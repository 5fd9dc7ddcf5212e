"""The official Anthropic SDK on a model served by Anthropic: what agents send (system
messages inside ``messages``, cache marks with a ``ttl``, beta flags) reaches the
upstream exactly as sent, streamed or not."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from fake_upstream import COUNT_TOKENS, TEXT, FakeUpstream
from harness import CLAUDE

COUNT_PATH = "/v1/messages/count_tokens"
CACHE_1H = {"type": "ephemeral", "ttl": "1h"}
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SYSTEM: list[Any] = [
    {"type": "text", "text": "You are a coding agent."},
    {"type": "text", "text": "Project rules: ...", "cache_control": CACHE_1H},
]
TOOLS: list[Any] = [
    {
        "name": "screenshot",
        "description": "Capture a window.",
        "input_schema": {"type": "object", "properties": {"window": {"type": "string"}}},
        "cache_control": {"type": "ephemeral", "ttl": "5m"},
    }
]
MESSAGES: list[Any] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Why does it crash?", "cache_control": {"type": "ephemeral"}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                "cache_control": CACHE_1H,
            },
        ],
    },
    {"role": "system", "content": "The user is on macOS."},
    {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "screenshot",
                "input": {"window": "app"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "Captured.", "cache_control": CACHE_1H}],
                "cache_control": {"type": "ephemeral", "ttl": "5m"},
            }
        ],
    },
    {"role": "system", "content": [{"type": "text", "text": "Answer in one line."}]},
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_system_messages_and_cache_marks_reach_anthropic_as_sent(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    call: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 100,
        "system": SYSTEM,
        "messages": MESSAGES,
        "tools": TOOLS,
    }
    if stream:
        with claude.messages.stream(**call) as events:
            assert events.get_final_message().content[0].text == TEXT  # type: ignore[union-attr]
    else:
        assert claude.messages.create(**call).content[0].text == TEXT  # type: ignore[union-attr]
    received = fake.last("/v1/messages").body
    assert received["system"] == SYSTEM
    assert received["messages"] == MESSAGES
    assert received["tools"] == TOOLS


def test_count_tokens_takes_them_as_sent(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    counted = claude.messages.count_tokens(
        model=CLAUDE, system=SYSTEM, messages=MESSAGES, tools=TOOLS
    )
    assert counted.input_tokens == COUNT_TOKENS
    received = fake.last(COUNT_PATH).body
    assert (received["system"], received["messages"], received["tools"]) == (
        SYSTEM,
        MESSAGES,
        TOOLS,
    )


def test_a_cache_mark_field_unknown_today_passes_too(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    mark = {"type": "ephemeral", "ttl": "1h", "scope": "organization"}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": mark}]}
    ]
    claude.messages.create(
        model=CLAUDE, max_tokens=10, messages=messages, extra_body={"cache_control": mark}
    )
    received = fake.last().body
    assert received["messages"] == messages
    assert received["cache_control"] == mark


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_beta_and_version_headers_reach_anthropic_unchanged(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    betas = "extended-cache-ttl-2025-04-11, interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    headers = {"anthropic-beta": betas, "anthropic-version": "2023-06-01"}
    call: dict[str, Any] = {"model": CLAUDE, "max_tokens": 10, "messages": MESSAGES[:1]}
    if stream:
        for _ in claude.messages.create(**call, stream=True, extra_headers=headers):
            pass
    else:
        claude.messages.create(**call, extra_headers=headers)
    received = fake.last("/v1/messages").headers
    assert received["anthropic-beta"] == betas
    assert received["anthropic-version"] == "2023-06-01"

    claude.messages.count_tokens(model=CLAUDE, messages=MESSAGES[:1], extra_headers=headers)
    assert fake.last(COUNT_PATH).headers["anthropic-beta"] == betas
