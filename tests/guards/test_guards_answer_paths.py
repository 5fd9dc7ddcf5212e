"""Every text a model writes is redacted on its way to the client, whole or streamed:
tool-call arguments, reasoning and thinking, refusals, in each dialect.

The pii guard redacts answers. The upstream's answers come from ``CallTool`` (a tool call
in every wire format, its arguments streamed in three pieces that cut the email) or are
scripted byte for byte (``Respond``) in the shapes the real APIs send; the client must
never see the email, and the official SDKs must still parse what it gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from fake_upstream import CallTool, FakeUpstream, Respond
from harness import CLAUDE, GPT, MASTER_KEY, GatewayServer, gateway_settings, running_gateway
from upstream_wire import anthropic_usage, openai_usage, response_object, responses_usage

EMAIL = "jane.doe@example.com"
REDACTED = "[REDACTED:email]"
COMMAND = f"mail {EMAIL}"
OAI = {"authorization": f"Bearer {MASTER_KEY}"}
ANT = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
SHELL = {
    "type": "object",
    "properties": {"command": {"type": "string"}},
    "required": ["command"],
}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def redacting(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = gateway_settings(
        fake_server, tmp_path_factory.mktemp("answer-paths"), guards={"pii": {"action": "redact"}}
    )
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def gw(redacting: GatewayServer, fake: FakeUpstream) -> GatewayServer:
    return redacting


def _oai(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def _claude(gw: GatewayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


def _post(gw: GatewayServer, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = ANT if path.startswith("/v1/messages") else OAI
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        return http.post(path, headers=headers, json=body)


def _sse(*events: tuple[str | None, Any]) -> Respond:
    out = b""
    for name, data in events:
        head = f"event: {name}\n".encode() if name else b""
        body = data if isinstance(data, bytes) else orjson.dumps(data)
        out += head + b"data: " + body + b"\n\n"
    return Respond(200, out, "text/event-stream")


def _data(answer: httpx.Response) -> list[dict[str, Any]]:
    """The JSON objects of an SSE answer's events."""
    return [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]


def _chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-upstream-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }


def _chat_stream(*deltas: dict[str, Any], finish: str = "stop") -> Respond:
    return _sse(
        *((None, _chunk(delta)) for delta in deltas),
        (None, _chunk({}, finish)),
        (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
        (None, b"[DONE]"),
    )


def _chat_text(answer: httpx.Response, field: str) -> str:
    return "".join(
        choice["delta"].get(field) or "" for chunk in _data(answer) for choice in chunk["choices"]
    )


# -- tool calls, through the official SDKs ---------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_arguments(gw: GatewayServer, fake: FakeUpstream, stream: bool) -> None:
    fake.script(CallTool(command=COMMAND))
    tools: Any = [{"type": "function", "function": {"name": "bash", "parameters": SHELL}}]
    client = _oai(gw)
    if stream:
        with client.chat.completions.stream(model=GPT, messages=HI, tools=tools) as events:
            message = events.get_final_completion().choices[0].message
    else:
        message = client.chat.completions.create(model=GPT, messages=HI, tools=tools)
        message = message.choices[0].message  # type: ignore[assignment]
    assert message.tool_calls is not None
    function = message.tool_calls[0].function  # type: ignore[union-attr]
    assert json.loads(function.arguments) == {"command": f"mail {REDACTED}"}


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_call_arguments(
    gw: GatewayServer, fake: FakeUpstream, stream: bool
) -> None:
    fake.script(CallTool(command=COMMAND))
    tools: Any = [{"type": "function", "name": "bash", "parameters": SHELL}]
    client = _oai(gw)
    if stream:
        with client.responses.stream(model=GPT, input="hi", tools=tools) as events:
            seen = list(events)
            final = events.get_final_response()
        numbers = [e.sequence_number for e in seen]
        assert numbers == sorted(set(numbers))
        deltas = "".join(
            e.delta for e in seen if e.type == "response.function_call_arguments.delta"
        )
        assert json.loads(deltas) == {"command": f"mail {REDACTED}"}
    else:
        final = client.responses.create(model=GPT, input="hi", tools=tools)
    calls = [item for item in final.output if item.type == "function_call"]
    assert json.loads(calls[0].arguments) == {"command": f"mail {REDACTED}"}


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_use_input(gw: GatewayServer, fake: FakeUpstream, stream: bool) -> None:
    fake.script(CallTool(command=COMMAND))
    tools: Any = [{"name": "bash", "input_schema": SHELL}]
    client = _claude(gw)
    if stream:
        with client.messages.stream(
            model=CLAUDE, max_tokens=50, messages=HI, tools=tools
        ) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(model=CLAUDE, max_tokens=50, messages=HI, tools=tools)
    uses = [block for block in message.content if block.type == "tool_use"]
    assert uses[0].input == {"command": f"mail {REDACTED}"}


# -- reasoning, thinking and refusals --------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "refusal"])
def test_chat_stream_reasoning_and_refusals(
    gw: GatewayServer, fake: FakeUpstream, field: str
) -> None:
    """``reasoning_content`` (vLLM, DeepSeek), ``reasoning`` (OpenRouter), refusals."""
    fake.script(
        _chat_stream(
            {"role": "assistant", field: "The user is jane."},
            {field: "doe@exa"},
            {field: "mple.com, I think."},
            {"content": "ok"},
        )
    )
    answer = _post(gw, "/v1/chat/completions", {"model": GPT, "messages": HI, "stream": True})
    assert answer.status_code == 200
    assert _chat_text(answer, field) == f"The user is {REDACTED}, I think."
    assert EMAIL not in answer.text


def test_chat_whole_reasoning_and_refusal(gw: GatewayServer, fake: FakeUpstream) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": f"The user is {EMAIL}.",
        "refusal": f"I will not write to {EMAIL}.",
    }
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-upstream-1",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": openai_usage(),
    }
    fake.script(Respond(200, orjson.dumps(body)))
    answer = _post(gw, "/v1/chat/completions", {"model": GPT, "messages": HI})
    got = answer.json()["choices"][0]["message"]
    assert got["reasoning_content"] == f"The user is {REDACTED}."
    assert got["refusal"] == f"I will not write to {REDACTED}."


def _message_start() -> tuple[str, dict[str, Any]]:
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-upstream-1",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": anthropic_usage(1),
    }
    return "message_start", {"type": "message_start", "message": start}


def _message_end() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_messages_stream_thinking(gw: GatewayServer, fake: FakeUpstream) -> None:
    def delta(index: int, kind: str, **fields: str) -> tuple[str, dict[str, Any]]:
        body = {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}}
        return "content_block_delta", body

    def block(index: int, kind: str, content: dict[str, Any]) -> list[tuple[str, Any]]:
        start = {"type": "content_block_start", "index": index, "content_block": content}
        return [(f"content_block_{kind}", start if kind == "start" else {
            "type": "content_block_stop", "index": index})]  # fmt: skip

    fake.script(
        _sse(
            _message_start(),
            *block(0, "start", {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, "thinking_delta", thinking="Write to jane.doe@exa"),
            delta(0, "thinking_delta", thinking="mple.com later."),
            delta(0, "signature_delta", signature="EqQBCgIYAhIM"),
            *block(0, "stop", {}),
            *block(1, "start", {"type": "text", "text": ""}),
            delta(1, "text_delta", text="Done."),
            *block(1, "stop", {}),
            *_message_end(),
        )
    )
    with _claude(gw).messages.stream(model=CLAUDE, max_tokens=50, messages=HI) as events:
        message = events.get_final_message()
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == f"Write to {REDACTED} later."
    assert thinking.signature == "EqQBCgIYAhIM"


def test_messages_whole_thinking(gw: GatewayServer, fake: FakeUpstream) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-upstream-1",
        "content": [
            {"type": "thinking", "thinking": f"Mail {EMAIL}.", "signature": "sig"},
            {"type": "text", "text": "Done."},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }
    fake.script(Respond(200, orjson.dumps(body)))
    message = _claude(gw).messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking == f"Mail {REDACTED}."


def test_responses_stream_reasoning_summary_and_refusal(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    summary = f"The user is {EMAIL}."
    refusal = f"I will not mail {EMAIL}."
    reasoning = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": summary}],
    }
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": refusal}],
    }
    final = {
        **response_object("gpt-upstream-1"),
        "output": [reasoning, message],
        "usage": responses_usage(),
    }
    at_summary = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    at_refusal = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": {**final, "status": "in_progress", "output": []}}),
        ("response.reasoning_summary_text.delta", {**at_summary, "delta": summary[:16]}),
        ("response.reasoning_summary_text.delta", {**at_summary, "delta": summary[16:]}),
        ("response.reasoning_summary_text.done", {**at_summary, "text": summary}),
        ("response.output_item.done", {"output_index": 0, "item": reasoning}),
        ("response.refusal.delta", {**at_refusal, "delta": refusal[:22]}),
        ("response.refusal.delta", {**at_refusal, "delta": refusal[22:]}),
        ("response.refusal.done", {**at_refusal, "refusal": refusal}),
        ("response.output_item.done", {"output_index": 1, "item": message}),
        ("response.completed", {"response": final}),
    ]
    fake.script(
        _sse(
            *(
                (kind, {"type": kind, "sequence_number": n, **fields})
                for n, (kind, fields) in enumerate(events)
            )
        )
    )
    answer = _post(gw, "/v1/responses", {"model": GPT, "input": "hi", "stream": True})
    assert answer.status_code == 200 and EMAIL not in answer.text
    got = _data(answer)
    assert [e["sequence_number"] for e in got] == list(range(len(got)))

    def deltas(kind: str) -> str:
        return "".join(e["delta"] for e in got if e["type"] == kind)

    assert deltas("response.reasoning_summary_text.delta") == f"The user is {REDACTED}."
    assert deltas("response.refusal.delta") == f"I will not mail {REDACTED}."
    completed = got[-1]["response"]["output"]
    assert completed[0]["summary"][0]["text"] == f"The user is {REDACTED}."
    assert completed[1]["content"][0]["refusal"] == f"I will not mail {REDACTED}."


# -- odd shapes --------------------------------------------------------------------------------


def test_chat_stream_choice_without_index_is_index_zero(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """Some OpenAI-compatible servers omit ``index``: the choice is screened as index 0."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = _chunk(delta, finish)
        del body["choices"][0]["index"]
        return body

    fake.script(
        _sse(
            (None, chunk({"role": "assistant", "content": "mail jane.doe@exa"})),
            (None, chunk({"content": "mple.com now"})),
            (None, chunk({}, "stop")),
            (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
            (None, b"[DONE]"),
        )
    )
    answer = _post(gw, "/v1/chat/completions", {"model": GPT, "messages": HI, "stream": True})
    assert answer.status_code == 200
    assert _chat_text(answer, "content") == f"mail {REDACTED} now"


def test_chat_stream_tool_calls_without_finish_are_released_at_done(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "send", "arguments": '{"to": "jane.doe@exa'}}  # fmt: skip
    fake.script(
        _sse(
            (None, _chunk({"role": "assistant", "content": None, "tool_calls": [call]})),
            (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'mple.com"}'}}]})),
            (None, {**_chunk({}), "choices": [], "usage": openai_usage()}),
            (None, b"[DONE]"),
        )
    )
    answer = _post(gw, "/v1/chat/completions", {"model": GPT, "messages": HI, "stream": True})
    assert answer.status_code == 200 and EMAIL not in answer.text
    arguments = "".join(
        call["function"].get("arguments", "")
        for chunk in _data(answer)
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    )
    assert json.loads(arguments) == {"to": REDACTED}


def test_responses_event_with_an_object_for_an_id_is_screened(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """An ``item_id`` that is a JSON object names its text like any other id: the stream
    runs to its end and its text is still redacted."""
    where = {"item_id": {"odd": 1}, "output_index": 0, "content_index": 0}
    final = {**response_object("gpt-upstream-1"), "usage": responses_usage()}
    fake.script(
        _sse(
            ("response.created", {"type": "response.created", "sequence_number": 0,
                                  "response": {**final, "status": "in_progress", "output": []}}),
            ("response.output_text.delta", {"type": "response.output_text.delta",
                                            "sequence_number": 1, "delta": "Hi jane.doe@exa",
                                            **where}),
            ("response.output_text.delta", {"type": "response.output_text.delta",
                                            "sequence_number": 2, "delta": "mple.com", **where}),
            ("response.output_text.done", {"type": "response.output_text.done",
                                           "sequence_number": 3, "text": f"Hi {EMAIL}",
                                           **where}),
            ("response.completed", {"type": "response.completed", "sequence_number": 4,
                                    "response": final}),
        )
    )  # fmt: skip
    answer = _post(gw, "/v1/responses", {"model": GPT, "input": "hi", "stream": True})
    assert answer.status_code == 200
    kinds = [line[7:] for line in answer.text.splitlines() if line.startswith("event: ")]
    assert kinds[-1] == "response.completed", kinds
    got = _data(answer)
    text = "".join(e["delta"] for e in got if e["type"] == "response.output_text.delta")
    assert text == f"Hi {REDACTED}"
    assert [e["text"] for e in got if e["type"] == "response.output_text.done"] == [text]
