"""Review: answers that reach the client with PII although the pii guard redacts answers.

The upstream's events are scripted byte for byte (``Respond``), in the shapes the real
APIs send. Each test has the model write an email address somewhere in an answer other
than plain text deltas; the client must never see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from fake_upstream import CallTool, FakeUpstream, Respond
from harness import CLAUDE, GPT, MASTER_KEY, GatewayServer, gateway_settings, running_gateway
from upstream_wire import anthropic_usage, openai_usage, response_object, responses_usage

EMAIL = "jane.doe@example.com"
OAI = {"authorization": f"Bearer {MASTER_KEY}"}
ANT = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def redacting(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = gateway_settings(
        fake_server, tmp_path_factory.mktemp("review-redact"), guards={"pii": {"action": "redact"}}
    )
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def gw(redacting: GatewayServer, fake: FakeUpstream) -> GatewayServer:
    return redacting


def _sse(*events: tuple[str | None, Any]) -> Respond:
    out = b""
    for name, data in events:
        head = f"event: {name}\n".encode() if name else b""
        body = data if isinstance(data, bytes) else orjson.dumps(data)
        out += head + b"data: " + body + b"\n\n"
    return Respond(200, out, "text/event-stream")


def _post(gw: GatewayServer, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = ANT if path.startswith("/v1/messages") else OAI
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        return http.post(path, headers=headers, json=body)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-upstream-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


CHAT = {"model": GPT, "messages": [{"role": "user", "content": "hi"}]}


def test_chat_stream_tool_call_arguments_keep_the_email(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "send", "arguments": ""}}  # fmt: skip
    fake.script(
        _sse(
            (None, _chunk({"role": "assistant", "content": None, "tool_calls": [call]})),
            (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "'}}]})),
            (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": EMAIL}}]})),
            (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]})),
            (None, _chunk({}, "tool_calls")),
            (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
            (None, b"[DONE]"),
        )
    )
    answer = _post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert answer.status_code == 200
    assert EMAIL not in answer.text


def test_chat_whole_tool_call_keeps_the_email(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    fake.script(CallTool(command=f"mail {EMAIL}"))
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}}}}]  # fmt: skip
    answer = _post(gw, "/v1/chat/completions", {**CHAT, "tools": tools})
    assert answer.status_code == 200, answer.text
    assert EMAIL not in answer.text


def test_chat_stream_reasoning_content_keeps_the_email(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """OpenAI-compatible reasoning servers (vLLM, DeepSeek) stream ``reasoning_content``."""
    fake.script(
        _sse(
            (None, _chunk({"role": "assistant", "reasoning_content": f"user is {EMAIL}"})),
            (None, _chunk({"content": "ok"})),
            (None, _chunk({}, "stop")),
            (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
            (None, b"[DONE]"),
        )
    )
    answer = _post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert answer.status_code == 200
    assert EMAIL not in answer.text


def test_responses_stream_function_call_keeps_the_email(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send",
            "arguments": "", "status": "in_progress"}  # fmt: skip
    args = f'{{"to": "{EMAIL}"}}'
    done_item = {**item, "arguments": args, "status": "completed"}
    final = {**response_object("gpt-upstream-1"), "output": [done_item], "usage": responses_usage()}
    fake.script(
        _sse(
            ("response.created", {"type": "response.created", "sequence_number": 0,
                                  "response": {**final, "status": "in_progress", "output": []}}),
            ("response.output_item.added", {"type": "response.output_item.added",
                                            "sequence_number": 1, "output_index": 0,
                                            "item": item}),
            ("response.function_call_arguments.delta",
             {"type": "response.function_call_arguments.delta", "sequence_number": 2,
              "item_id": "fc_1", "output_index": 0, "delta": args}),
            ("response.function_call_arguments.done",
             {"type": "response.function_call_arguments.done", "sequence_number": 3,
              "item_id": "fc_1", "output_index": 0, "arguments": args}),
            ("response.output_item.done", {"type": "response.output_item.done",
                                           "sequence_number": 4, "output_index": 0,
                                           "item": done_item}),
            ("response.completed", {"type": "response.completed", "sequence_number": 5,
                                    "response": final}),
        )
    )  # fmt: skip
    answer = _post(gw, "/v1/responses", {"model": GPT, "input": "hi", "stream": True})
    assert answer.status_code == 200
    assert EMAIL not in answer.text


def test_messages_stream_tool_use_input_keeps_the_email(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    start = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-upstream-1",
             "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": anthropic_usage(1)}  # fmt: skip
    fake.script(
        _sse(
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "tool_use", "id": "tu_1",
                                                       "name": "send", "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "input_json_delta",
                                               "partial_json": f'{{"to": "{EMAIL}"}}'}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                               "usage": {"output_tokens": 9}}),
            ("message_stop", {"type": "message_stop"}),
        )
    )  # fmt: skip
    body = {"model": CLAUDE, "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    answer = _post(gw, "/v1/messages", body)
    assert answer.status_code == 200
    assert EMAIL not in answer.text


def test_chat_stream_choice_without_index_is_not_screened(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """Some OpenAI-compatible servers omit ``index``: the screen then passes the text
    through untouched (fail open)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = _chunk(delta, finish)
        del body["choices"][0]["index"]
        return body

    fake.script(
        _sse(
            (None, chunk({"role": "assistant", "content": f"mail {EMAIL} now"})),
            (None, chunk({}, "stop")),
            (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
            (None, b"[DONE]"),
        )
    )
    answer = _post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert answer.status_code == 200
    assert EMAIL not in answer.text


# -- robustness ------------------------------------------------------------------------


def test_responses_event_with_an_odd_item_id_breaks_the_stream(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """An upstream event whose ``item_id`` is an object (not hashable in Python) makes the
    screen raise: the client's stream stops without an error event or its final events,
    while the same stream without guards would pass."""
    where = {"item_id": {"odd": 1}, "output_index": 0, "content_index": 0}
    final = {**response_object("gpt-upstream-1"), "usage": responses_usage()}
    fake.script(
        _sse(
            ("response.created", {"type": "response.created", "sequence_number": 0,
                                  "response": {**final, "status": "in_progress", "output": []}}),
            ("response.output_text.delta", {"type": "response.output_text.delta",
                                            "sequence_number": 1, "delta": "Hi", **where}),
            ("response.output_text.done", {"type": "response.output_text.done",
                                           "sequence_number": 2, "text": "Hi", **where}),
            ("response.completed", {"type": "response.completed", "sequence_number": 3,
                                    "response": final}),
        )
    )  # fmt: skip
    answer = _post(gw, "/v1/responses", {"model": GPT, "input": "hi", "stream": True})
    assert answer.status_code == 200
    kinds = [line[7:] for line in answer.text.splitlines() if line.startswith("event: ")]
    assert kinds and kinds[-1] in ("response.completed", "error", "response.failed"), kinds
