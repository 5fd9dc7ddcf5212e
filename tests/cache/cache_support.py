"""Fixtures and SDK plumbing for the response-cache tests.

Answers come from recorded-format fixtures: this directory's ``fixtures/`` and the
translation tests' (``tests/translate/fixtures``), and from the gateway's own stream
translators (what a client of a translated call really receives). Replays go through the
official OpenAI and Anthropic SDKs over an in-process transport (httpx ``MockTransport``):
whole bodies as JSON, streams as SSE bytes, so assertions see what a real client would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson

from tollway.sse import EventSplitter
from tollway.translate.base import Translator, event_json

try:  # the HTTP client the installed SDKs are built on
    import httpx2 as http
except ImportError:  # pragma: no cover - SDKs built on httpx
    import httpx as http  # type: ignore[no-redef]

HERE = Path(__file__).parent / "fixtures"
TRANSLATE = Path(__file__).parent.parent / "translate" / "fixtures"


def load_json(name: str) -> dict[str, Any]:
    """A JSON fixture from this directory, else from the translation tests'."""
    path = HERE / name if (HERE / name).exists() else TRANSLATE / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def split(raw: bytes, chunk_size: int = 41) -> list[bytes]:
    """SSE bytes as whole events, split the way the gateway splits network reads."""
    splitter = EventSplitter()
    events: list[bytes] = []
    for start in range(0, len(raw), chunk_size):
        events.extend(splitter.feed(raw[start : start + chunk_size]))
    assert splitter.rest() == b""
    return events


def load_events(name: str) -> list[bytes]:
    """An SSE fixture as whole events."""
    path = HERE / name if (HERE / name).exists() else TRANSLATE / name
    return split(path.read_bytes())


def datas(events: list[bytes]) -> list[Any]:
    """The JSON of each event (``[DONE]`` and comments left out)."""
    return [data for event in events if (data := event_json(event)) is not None]


# ----------------------------------------------------------------------------- clients


def _transport(body: bytes, content_type: str) -> Any:
    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": content_type}, content=body)

    return http.MockTransport(handler)


def openai_client(body: bytes, streamed: bool) -> openai.OpenAI:
    """An OpenAI client whose every call gets ``body`` (SSE or JSON)."""
    kind = "text/event-stream" if streamed else "application/json"
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://upstream.test/v1",
        http_client=http.Client(transport=_transport(body, kind)),
        max_retries=0,
    )


def anthropic_client(body: bytes, streamed: bool) -> anthropic.Anthropic:
    """An Anthropic client whose every call gets ``body`` (SSE or JSON)."""
    kind = "text/event-stream" if streamed else "application/json"
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://upstream.test",
        http_client=http.Client(transport=_transport(body, kind)),
        max_retries=0,
    )


CHAT: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}]}
COMPLETION: dict[str, Any] = {"model": "gpt-test", "prompt": "Why is the sky blue?"}
RESPONSES: dict[str, Any] = {"model": "gpt-test", "input": "Hi"}
MESSAGES: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hi"}],
}


def chat_whole(body: bytes) -> dict[str, Any]:
    """What the SDK's ``chat.completions.create()`` makes of a whole body."""
    return _plain(openai_client(body, False).chat.completions.create(**CHAT).model_dump())


def chat_streamed(events: list[bytes]) -> dict[str, Any]:
    """What ``chat.completions.stream()`` accumulates from a chunk stream."""
    client = openai_client(b"".join(events), True)
    with client.chat.completions.stream(**CHAT) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    return _plain(final.model_dump())


def completion_whole(body: bytes) -> dict[str, Any]:
    """What ``completions.create()`` makes of a whole body."""
    completion = openai_client(body, False).completions.create(**COMPLETION)
    dumped: dict[str, Any] = completion.model_dump()
    return dumped


def completion_streamed(events: list[bytes]) -> list[Any]:
    """The chunks ``completions.create(stream=True)`` yields."""
    client = openai_client(b"".join(events), True)
    return list(client.completions.create(stream=True, **COMPLETION))


def response_whole(body: bytes, parsed: bool = True) -> dict[str, Any]:
    """What ``responses.parse()`` (the whole-body twin of ``responses.stream()``, with
    the same parsed fields) or ``responses.create()`` makes of a whole body."""
    responses = openai_client(body, False).responses
    return (responses.parse if parsed else responses.create)(**RESPONSES).model_dump()


def response_streamed(events: list[bytes]) -> tuple[dict[str, Any], list[Any]]:
    """``responses.stream()``'s final response and the events it yielded."""
    client = openai_client(b"".join(events), True)
    with client.responses.stream(**RESPONSES) as stream:
        seen = list(stream)
        final = stream.get_final_response()
    return final.model_dump(), seen


def response_stream_events(events: list[bytes]) -> list[Any]:
    """The events ``responses.stream()`` yields (for streams without a final response:
    the SDK keeps one only from ``response.completed``, as with the real API)."""
    client = openai_client(b"".join(events), True)
    with client.responses.stream(**RESPONSES) as stream:
        return list(stream)


def message_whole(body: bytes) -> dict[str, Any]:
    """What ``messages.create()`` makes of a whole body."""
    message = anthropic_client(body, False).messages.create(**MESSAGES)
    dumped: dict[str, Any] = message.model_dump()
    return dumped


def message_streamed(events: list[bytes]) -> dict[str, Any]:
    """``messages.stream()``'s final message (the raw events must parse too)."""
    body = b"".join(events)
    list(anthropic_client(body, True).messages.create(stream=True, **MESSAGES))
    with anthropic_client(body, True).messages.stream(**MESSAGES) as stream:
        return stream.get_final_message().model_dump()


def _plain(completion: dict[str, Any]) -> dict[str, Any]:
    """A chat completion without the stream helpers' own fields (parsed content,
    parsed arguments, the chunk ``index`` kept on tool calls)."""
    for choice in completion["choices"]:
        message = choice["message"]
        message.pop("parsed", None)
        for call in message.get("tool_calls") or []:
            call.pop("index", None)
            (call.get("function") or {}).pop("parsed_arguments", None)
    return completion


def dumps(body: dict[str, Any]) -> bytes:
    """A body as the bytes a client receives."""
    return orjson.dumps(body)


# ------------------------------------------------------------------- translated answers


def translated_stream(
    translator: type[Translator], request: dict[str, Any], upstream: list[bytes]
) -> list[bytes]:
    """The events a client of a translated call receives for ``upstream``'s events."""
    call = translator(dict(request))
    call.request("upstream-model")
    stream = call.stream()
    events = [out for event in upstream for out in stream.feed(event)]
    return events + stream.finish()


def translated_body(
    translator: type[Translator], request: dict[str, Any], upstream: dict[str, Any]
) -> dict[str, Any]:
    """The body a client of a translated call receives for ``upstream``'s body."""
    call = translator(dict(request))
    call.request("upstream-model")
    return call.response(upstream)
