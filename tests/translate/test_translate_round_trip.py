"""Translating one way and back keeps the meaning: the two pairings are inverses up to
what one API cannot say (dropped parameters, thinking, cache marks)."""

from __future__ import annotations

import json
from typing import Any

from translate_support import (
    MESSAGES_REQUEST,
    accumulate_chat,
    chat_chunks,
    load_events,
    load_json,
    replay_messages_stream,
    run_stream,
)

from tollway.translate.anthropic_to_openai import AnthropicToOpenAIChat
from tollway.translate.openai_to_anthropic import OpenAIChatToAnthropic

Item = tuple[Any, ...]


def _merge(turns: list[tuple[str, list[Item]]]) -> list[tuple[str, list[Item]]]:
    merged: list[tuple[str, list[Item]]] = []
    for role, items in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(items)
        elif items:
            merged.append((role, items))
    return merged


def chat_meaning(body: dict[str, Any]) -> dict[str, Any]:
    """What an OpenAI chat request asks, with equivalent spellings made equal."""
    turns = []
    for message in body["messages"]:
        role = "system" if message["role"] in ("system", "developer") else message["role"]
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        items: list[Item] = []
        if role == "tool":
            items.append(
                ("result", message["tool_call_id"], "\n".join(part["text"] for part in parts))
            )
        else:
            for part in parts:
                if part["type"] == "text" and part["text"]:
                    items.append(("text", part["text"]))
                elif part["type"] == "image_url":
                    items.append(("image", part["image_url"]["url"]))
        for call in message.get("tool_calls") or []:
            function = call["function"]
            items.append(("call", call["id"], function["name"], json.loads(function["arguments"])))
        turns.append((role, items))
    tools = [
        (
            tool["function"]["name"],
            tool["function"].get("description"),
            tool["function"].get("parameters"),
        )
        for tool in body.get("tools") or []
    ]
    stop = body.get("stop")
    return {
        "turns": _merge(turns),
        "tools": tools,
        "tool_choice": body.get("tool_choice"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "stop": [stop] if isinstance(stop, str) else stop,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        **{name: body.get(name) for name in ("temperature", "top_p", "user", "stream")},
    }


def messages_meaning(body: dict[str, Any]) -> dict[str, Any]:
    """What an Anthropic request asks, with equivalent spellings made equal."""
    system = body.get("system") or []
    turns = []
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        items: list[Item] = []
        for block in blocks:
            if block["type"] == "text":
                items.append(("text", block["text"]))
            elif block["type"] == "image":
                items.append(("image", block["source"]))
            elif block["type"] == "tool_use":
                items.append(("call", block["id"], block["name"], block["input"]))
            elif block["type"] == "tool_result":
                result = block.get("content", "")
                texts = [result] if isinstance(result, str) else [part["text"] for part in result]
                prefix = "Error: " if block.get("is_error") else ""
                items.append(("result", block["tool_use_id"], prefix + "\n".join(texts)))
        turns.append((message["role"], items))
    return {
        "system": [system] if isinstance(system, str) else [block["text"] for block in system],
        "turns": _merge(turns),
        "tools": [
            (tool["name"], tool.get("description"), tool["input_schema"])
            for tool in body.get("tools") or []
        ],
        "tool_choice": body.get("tool_choice"),
        **{
            name: body.get(name)
            for name in (
                "max_tokens",
                "temperature",
                "top_p",
                "stop_sequences",
                "metadata",
                "stream",
            )
        },
    }


def test_openai_request_there_and_back() -> None:
    original = load_json("openai_chat_request.json")
    anthropic_body = OpenAIChatToAnthropic(original).request("claude-sonnet-4-5-20250929")
    back = AnthropicToOpenAIChat(anthropic_body).request("gpt-4.1-2025-04-14")
    assert chat_meaning(back) == chat_meaning(original)


def test_openai_streaming_request_there_and_back() -> None:
    original = {**load_json("openai_chat_request.json"), "stream": True}
    back = AnthropicToOpenAIChat(OpenAIChatToAnthropic(original).request("c")).request("g")
    assert chat_meaning(back) == chat_meaning(original)
    assert back["stream_options"] == {"include_usage": True}


def test_anthropic_request_there_and_back() -> None:
    original = load_json("anthropic_messages_request.json")
    openai_body = AnthropicToOpenAIChat(original).request("gpt-4.1-2025-04-14")
    back = OpenAIChatToAnthropic(openai_body).request("claude-sonnet-4-5-20250929")
    assert messages_meaning(back) == messages_meaning(original)


def test_anthropic_response_there_and_back() -> None:
    """Cache writes are billed as input at OpenAI, so they come back as plain input."""
    original = load_json("anthropic_message_tool_use.json")
    chat = OpenAIChatToAnthropic({"model": "m", "messages": []}).response(original)
    back = AnthropicToOpenAIChat(MESSAGES_REQUEST).response(chat)
    assert back["content"] == [
        block for block in original["content"] if block["type"] != "thinking"
    ]
    assert back["stop_reason"] == original["stop_reason"]
    assert back["usage"] == {
        "input_tokens": 112 + 1500,
        "output_tokens": 141,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 0,
    }


def test_openai_response_there_and_back() -> None:
    original = load_json("openai_chat_completion_tool_calls.json")
    message = AnthropicToOpenAIChat(MESSAGES_REQUEST).response(original)
    back = OpenAIChatToAnthropic({"model": "m", "messages": []}).response(message)
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    calls = back["choices"][0]["message"]["tool_calls"]
    original_calls = original["choices"][0]["message"]["tool_calls"]
    assert [(call["id"], json.loads(call["function"]["arguments"])) for call in calls] == [
        (call["id"], json.loads(call["function"]["arguments"])) for call in original_calls
    ]
    assert back["usage"] == {
        "prompt_tokens": 182,
        "completion_tokens": 54,
        "total_tokens": 236,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_anthropic_stream_through_chat_chunks_and_back() -> None:
    """The chain an Anthropic client takes to a provider reached through OpenAI chat."""
    inner = OpenAIChatToAnthropic(
        {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    )
    outer = AnthropicToOpenAIChat({**MESSAGES_REQUEST, "stream": True})
    inner_stream, outer_stream = inner.stream(), outer.stream()
    events: list[bytes] = []
    for event in load_events("anthropic_stream_tool_use.sse"):
        for chunk in inner_stream.feed(event):
            events.extend(outer_stream.feed(chunk))
    events.extend(outer_stream.finish())
    _, final = replay_messages_stream(events)
    _, original = replay_messages_stream(load_events("anthropic_stream_tool_use.sse"))
    expected = [block.model_dump() for block in original.content if block.type != "thinking"]
    assert [block.model_dump() for block in final.content] == expected
    assert final.stop_reason == original.stop_reason
    assert final.usage.input_tokens == original.usage.input_tokens
    assert final.usage.cache_read_input_tokens == original.usage.cache_read_input_tokens
    assert final.usage.output_tokens == original.usage.output_tokens


def test_chat_stream_through_anthropic_events_and_back() -> None:
    outer = OpenAIChatToAnthropic(
        {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    )
    inner = AnthropicToOpenAIChat({**MESSAGES_REQUEST, "stream": True})
    events = run_stream(inner.stream(), load_events("openai_stream_tool_calls.sse"))
    chunks = run_stream(outer.stream(), events)

    back = accumulate_chat(chat_chunks(chunks))
    original = accumulate_chat(chat_chunks(load_events("openai_stream_tool_calls.sse")))
    assert back["text"] == original["text"]
    assert back["tool_calls"] == original["tool_calls"]
    assert back["finish_reason"] == original["finish_reason"]
    assert back["usage"].prompt_tokens == original["usage"].prompt_tokens
    assert back["usage"].prompt_tokens_details.cached_tokens == 128
