"""Fixtures, stream plumbing and SDK replay for the translation tests.

Recorded-format fixtures live in ``fixtures/``: request and response bodies as JSON,
streams as the raw SSE bytes a provider sends. Streams are cut into events by the
gateway's own ``EventSplitter``, fed to a stream translator one event at a time, and
the translated events are replayed through the official SDKs over an in-process
transport, so the assertions see what a real client would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
from openai.types.chat import ChatCompletionChunk

from tollway.sse import EventSplitter
from tollway.translate.base import StreamTranslator, event_json

try:  # the HTTP client the installed SDKs are built on
    import httpx2 as http
except ImportError:  # pragma: no cover - SDKs built on httpx
    import httpx as http  # type: ignore[no-redef]

FIXTURES = Path(__file__).parent / "fixtures"


def load_json(name: str) -> dict[str, Any]:
    """A JSON fixture."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def load_events(name: str, chunk_size: int = 37) -> list[bytes]:
    """An SSE fixture as whole events, split the way the gateway splits network reads."""
    raw = (FIXTURES / name).read_bytes()
    splitter = EventSplitter()
    events: list[bytes] = []
    for start in range(0, len(raw), chunk_size):
        events.extend(splitter.feed(raw[start : start + chunk_size]))
    assert splitter.rest() == b""
    return events


def run_stream(
    translator: StreamTranslator, events: list[bytes], finish: bool = True
) -> list[bytes]:
    """Feed every event, one at a time, then ``finish()``; the client events out."""
    out: list[bytes] = []
    for event in events:
        translated = translator.feed(event)
        assert all(item.endswith(b"\n\n") for item in translated)
        out.extend(translated)
    if finish:
        out.extend(translator.finish())
    return out


def chat_chunks(events: list[bytes]) -> list[ChatCompletionChunk]:
    """Client events as validated chat chunks; the stream must end with ``[DONE]``."""
    assert events[-1] == b"data: [DONE]\n\n"
    assert b"[DONE]" not in b"".join(events[:-1])
    return [ChatCompletionChunk.model_validate(event_json(event)) for event in events[:-1]]


def accumulate_chat(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """What a client rebuilds from chunks: text, tool calls, finish reason, usage."""
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    tool_calls = [calls[index] for index in sorted(calls)]
    return {"text": text, "tool_calls": tool_calls, "finish_reason": finish, "usage": usage}


def anthropic_events(events: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """Client events as (event name, data) pairs; the name must match the data's type."""
    parsed = []
    for event in events:
        head = event.split(b"\n", 1)[0]
        assert head.startswith(b"event: ")
        name = head.removeprefix(b"event: ").decode()
        data = event_json(event)
        assert data["type"] == name
        parsed.append((name, data))
    return parsed


def _sse_transport(body: bytes) -> Any:
    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return http.MockTransport(handler)


def openai_client(body: bytes) -> openai.OpenAI:
    """An OpenAI client whose every call streams back ``body``."""
    http_client = http.Client(transport=_sse_transport(body))
    return openai.OpenAI(
        api_key="sk-test", base_url="http://upstream.test/v1", http_client=http_client
    )


def anthropic_client(body: bytes) -> anthropic.Anthropic:
    """An Anthropic client whose every call streams back ``body``."""
    http_client = http.Client(transport=_sse_transport(body))
    return anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://upstream.test", http_client=http_client
    )


CHAT_REQUEST: dict[str, Any] = {
    "model": "claude-travel",
    "messages": [{"role": "user", "content": "Hi"}],
}
MESSAGES_REQUEST: dict[str, Any] = {
    "model": "gpt-travel",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hi"}],
}


def replay_chat_stream(events: list[bytes]) -> tuple[list[Any], Any]:
    """The chunks ``create(stream=True)`` yields and ``stream()``'s final completion."""
    body = b"".join(events)
    client = openai_client(body)
    chunks = list(client.chat.completions.create(stream=True, **CHAT_REQUEST))
    with openai_client(body).chat.completions.stream(**CHAT_REQUEST) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    client.close()
    return chunks, final


def replay_messages_stream(events: list[bytes]) -> tuple[list[Any], Any]:
    """The events ``create(stream=True)`` yields and ``stream()``'s final message."""
    body = b"".join(events)
    client = anthropic_client(body)
    raw = list(client.messages.create(stream=True, **MESSAGES_REQUEST))
    with anthropic_client(body).messages.stream(**MESSAGES_REQUEST) as stream:
        final = stream.get_final_message()
    client.close()
    return raw, final
