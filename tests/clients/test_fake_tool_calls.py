"""The fake upstream's ``CallTool`` round trip, checked with the official SDKs talking to
the fake directly: if these pass, a client test that fails is about the gateway."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from fake_upstream import (
    PROMPT_TOKENS,
    CallTool,
    FakeUpstream,
    Reply,
    offered_tools,
    tool_arguments,
    tool_results,
)

SCHEMA = {
    "type": "object",
    "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
    "required": ["command", "description"],
}
ARGUMENTS = {"command": "echo tool-says-$((6*7))", "description": "Prints a marker"}
FINAL = "The tool said tool-says-42."
OUTPUT = "tool-says-42\n"


@pytest.fixture
def oai(fake: FakeUpstream) -> openai.OpenAI:
    """The OpenAI SDK on the fake itself."""
    fake.script(CallTool(), persistent=True)
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-fake", max_retries=0)


@pytest.fixture
def claude(fake: FakeUpstream) -> anthropic.Anthropic:
    """The Anthropic SDK on the fake itself."""
    fake.script(CallTool(), persistent=True)
    return anthropic.Anthropic(base_url=fake.url, api_key="sk-fake", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions(oai: openai.OpenAI, stream: bool) -> None:
    """A call with the preamble as content, then the answer to the ``tool`` message."""
    tools: Any = [{"type": "function", "function": {"name": "bash", "parameters": SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": "go"}]
    asked: Any
    if stream:
        options: Any = {"include_usage": True}
        with oai.chat.completions.stream(
            model="m", messages=messages, tools=tools, stream_options=options
        ) as events:
            asked = events.get_final_completion()
    else:
        asked = oai.chat.completions.create(model="m", messages=messages, tools=tools)
    choice = asked.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Running the command."
    assert asked.usage is not None and asked.usage.prompt_tokens == PROMPT_TOKENS
    call = choice.message.tool_calls[0]
    assert call.function.name == "bash" and json.loads(call.function.arguments) == ARGUMENTS
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": OUTPUT},
    ]
    answer = oai.chat.completions.create(model="m", messages=messages, tools=tools)
    assert answer.choices[0].message.content == FINAL


@pytest.mark.parametrize("stream", [False, True])
def test_responses(oai: openai.OpenAI, stream: bool) -> None:
    """A ``function_call`` item after the preamble message, then the answer to its output."""
    tools: Any = [{"type": "function", "name": "exec_command", "parameters": SCHEMA}]
    asked: Any
    if stream:
        with oai.responses.stream(model="m", input="go", tools=tools) as events:
            asked = events.get_final_response()
    else:
        asked = oai.responses.create(model="m", input="go", tools=tools)
    assert [item.type for item in asked.output] == ["message", "function_call"]
    call: Any = asked.output[1]
    assert call.name == "exec_command" and json.loads(call.arguments) == ARGUMENTS
    assert asked.usage is not None and asked.usage.input_tokens == PROMPT_TOKENS
    history: Any = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": "{}"},
        {"type": "function_call_output", "call_id": call.call_id, "output": OUTPUT},
    ]
    assert oai.responses.create(model="m", input=history, tools=tools).output_text == FINAL


@pytest.mark.parametrize("stream", [False, True])
def test_messages(claude: anthropic.Anthropic, stream: bool) -> None:
    """A ``tool_use`` block after the preamble, then the answer to its ``tool_result``."""
    tools: Any = [{"name": "Bash", "input_schema": SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": "go"}]
    asked: Any
    if stream:
        with claude.messages.stream(
            model="m", max_tokens=99, messages=messages, tools=tools
        ) as events:
            asked = events.get_final_message()
    else:
        asked = claude.messages.create(model="m", max_tokens=99, messages=messages, tools=tools)
    assert asked.stop_reason == "tool_use" and asked.usage.input_tokens == PROMPT_TOKENS
    text, use = asked.content
    assert text.type == "text" and use.type == "tool_use"
    assert use.name == "Bash" and use.input == ARGUMENTS
    result = {
        "type": "tool_result",
        "tool_use_id": use.id,
        "content": [{"type": "text", "text": OUTPUT}],
    }
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in asked.content]},
        {"role": "user", "content": [result]},
    ]
    answer = claude.messages.create(model="m", max_tokens=99, messages=messages, tools=tools)
    assert answer.content[0].type == "text" and answer.content[0].text == FINAL


def test_results_must_answer_a_call(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    """A tool result with no call before it gets the 400 the real APIs give."""
    orphan: Any = [
        {"role": "user", "content": "go"},
        {"role": "tool", "tool_call_id": "x", "content": "1"},
    ]
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="m", messages=orphan)
    stray: Any = [{"type": "function_call_output", "call_id": "x", "output": "1"}]
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model="m", input=stray)
    result: Any = [{"type": "tool_result", "tool_use_id": "x", "content": "1"}]
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="m", max_tokens=9, messages=[{"role": "user", "content": result}]
        )


def test_a_result_without_the_marker_is_reported(oai: openai.OpenAI) -> None:
    """When the client did not run the command, the answer says what came back instead."""
    tools: Any = [{"type": "function", "function": {"name": "bash", "parameters": SCHEMA}}]
    call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    messages: Any = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "permission denied"},
    ]
    text = oai.chat.completions.create(model="m", messages=messages, tools=tools)
    assert text.choices[0].message.content == (
        "The tool result did not contain tool-says-42: permission denied"
    )


def test_no_preferred_tool_means_text(oai: openai.OpenAI) -> None:
    """Offered tools the fake does not call get text naming them."""
    tools: Any = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    answer = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "go"}], tools=tools
    )
    assert answer.choices[0].message.content == "None of the offered tools (search) is one I call."


def test_scripts_by_match(fake: FakeUpstream) -> None:
    """A matched behaviour answers only calls whose body carries its text."""
    fake.script(Reply(words=("mine",)), match="run-1", persistent=True)
    client = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-fake", max_retries=0)
    for text, expected in (("run-1", "mine"), ("run-2", "Hello from the fake upstream.")):
        messages: Any = [{"role": "user", "content": text}]
        answer = client.chat.completions.create(model="m", messages=messages)
        assert answer.choices[0].message.content == expected


def test_arguments_follow_the_schema() -> None:
    """An array command becomes an argv; other required fields get plain valid values."""
    schema = {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}},
            "timeout_ms": {"type": ["integer", "null"], "minimum": 100},
            "login": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "workdir": {"type": "string", "default": "."},
            "optional": {"type": "string"},
        },
        "required": ["command", "timeout_ms", "login", "mode", "workdir"],
    }
    assert tool_arguments(schema, "echo hi") == {
        "command": ["bash", "-lc", "echo hi"],
        "timeout_ms": 100,
        "login": False,
        "mode": "fast",
        "workdir": ".",
    }
    assert tool_arguments({"properties": {"cmd": {"type": "string"}}}, "ls") == {"cmd": "ls"}


def test_reading_requests() -> None:
    """Tools offered and tool results read from each API's request shape."""
    chat = {"tools": [{"type": "function", "function": {"name": "a", "parameters": SCHEMA}}]}
    responses = {"tools": [{"type": "function", "name": "b"}, {"type": "web_search"}]}
    messages = {"tools": [{"name": "c", "input_schema": SCHEMA}, {"type": "bash_20250124"}]}
    assert offered_tools("/v1/chat/completions", chat) == {"a": SCHEMA}
    assert offered_tools("/v1/responses", responses) == {"b": {}}
    assert offered_tools("/v1/messages", messages) == {"c": SCHEMA}
    parts = [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]
    block = {"type": "tool_result", "tool_use_id": "t", "content": parts}
    assert tool_results("/v1/messages", {"messages": [{"role": "user", "content": [block]}]}) == [
        ("t", "xy")
    ]
