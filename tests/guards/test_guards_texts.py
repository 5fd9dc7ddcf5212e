"""Text slots: every text of each request and response shape is found, can be replaced
in place and read back, and nothing else in the body changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tollway.guards.texts import request_texts, response_texts

IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4"
    "DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
DESCRIPTION = "a city, e.g. Paris"
TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": DESCRIPTION}},
}

CHAT: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 C"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Il fait beau."},
                {"type": "refusal", "refusal": "no"},
            ],
        },
        {"role": "function", "name": "lookup", "content": "legacy result"},
        {
            "role": "user",
            "name": "jane_doe",
            "content": [
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": IMAGE, "filename": "notes.pdf"}},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "weather", "description": "weather", "parameters": TOOL_SCHEMA},
        }
    ],
    "prediction": {"type": "content", "content": "Il fait beau."},
    "temperature": 0.2,
    "user": "user-1234",
    "metadata": {"ticket": "T-1"},
    "stop": ["END"],
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": "Plan a trip"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "to Rome"},
                {"type": "input_image", "image_url": IMAGE},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sure.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "f1", "name": "book", "arguments": '{"day": 1}'},
        {"type": "function_call_output", "call_id": "f1", "output": "booked"},
        {
            "type": "reasoning",
            "id": "r1",
            "summary": [{"type": "summary_text", "text": "thinking"}],
            "encrypted_content": "gAAAAABo",
        },
        {
            "type": "local_shell_call",
            "id": "ls1",
            "call_id": "s1",
            "action": {"type": "exec", "command": ["cat", "notes.txt"], "env": {}},
        },
        {"type": "local_shell_call_output", "id": "s1", "output": "the notes"},
        {"type": "mcp_call", "id": "m1", "arguments": '{"q": 1}', "output": "mcp answer"},
    ],
    "prompt": {
        "id": "pmpt_1",
        "variables": {"city": "Rome", "note": {"type": "input_text", "text": "cheap"}},
    },
    "tools": [{"type": "function", "name": "book", "parameters": TOOL_SCHEMA}],
}
MESSAGES: dict[str, Any] = {
    "model": "claude-sonnet-4",
    "max_tokens": 100,
    "system": [{"type": "text", "text": "You are kind.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "search",
                    "input": {"q": "x", "name": "a tool argument", "filter": {"id": "y"}},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "result A"}],
                },
                {"type": "tool_result", "tool_use_id": "t2", "content": "result B"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "doc text"},
                    "context": "uploaded today",
                },
                {
                    "type": "document",
                    "source": {"type": "content", "content": [{"type": "text", "text": "page"}]},
                },
                {"type": "text", "text": "Thanks", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ],
    "tools": [{"name": "search", "input_schema": TOOL_SCHEMA}],
}

REQUESTS: list[tuple[str, dict[str, Any], list[tuple[str, str, str]]]] = [
    (
        "chat.completions",
        CHAT,
        [
            ("messages[0].content", "system", "You are terse."),
            ("messages[1].content[0].text", "system", "Answer in French."),
            ("messages[2].content[0].text", "user", "What is in this picture?"),
            ("messages[3].tool_calls[0].function.arguments", "assistant", '{"city":"Paris"}'),
            ("messages[4].content", "tool", "Sunny, 21 C"),
            ("messages[5].content[0].text", "assistant", "Il fait beau."),
            ("messages[5].content[1].refusal", "assistant", "no"),
            ("messages[6].content", "tool", "legacy result"),
            ("messages[7].content[1].file.filename", "user", "notes.pdf"),
            ("tools[0].function.description", "system", "weather"),
            ("tools[0].function.parameters.properties.city.description", "system", DESCRIPTION),
            ("prediction.content", "user", "Il fait beau."),
        ],
    ),
    (
        "responses",
        RESPONSES,
        [
            ("instructions", "system", "Be brief."),
            ("input[0].content", "user", "Plan a trip"),
            ("input[1].content[0].text", "user", "to Rome"),
            ("input[2].content[0].text", "assistant", "Sure."),
            ("input[3].arguments", "assistant", '{"day": 1}'),
            ("input[4].output", "tool", "booked"),
            ("input[5].summary[0].text", "assistant", "thinking"),
            ("input[6].action.command[0]", "assistant", "cat"),
            ("input[6].action.command[1]", "assistant", "notes.txt"),
            ("input[7].output", "tool", "the notes"),
            ("input[8].arguments", "assistant", '{"q": 1}'),
            ("input[8].output", "tool", "mcp answer"),
            ("prompt.variables.city", "user", "Rome"),
            ("prompt.variables.note.text", "user", "cheap"),
            ("tools[0].parameters.properties.city.description", "system", DESCRIPTION),
        ],
    ),
    ("responses", {"model": "m", "input": "Just a string"}, [("input", "user", "Just a string")]),
    *[
        (
            endpoint,
            MESSAGES,
            [
                ("system[0].text", "system", "You are kind."),
                ("messages[0].content", "user", "Hello"),
                ("messages[1].content[0].thinking", "assistant", "hmm"),
                ("messages[1].content[2].text", "assistant", "Let me look."),
                ("messages[1].content[3].input.q", "assistant", "x"),
                ("messages[1].content[3].input.name", "assistant", "a tool argument"),
                ("messages[1].content[3].input.filter.id", "assistant", "y"),
                ("messages[2].content[0].content[0].text", "tool", "result A"),
                ("messages[2].content[1].content", "tool", "result B"),
                ("messages[2].content[3].source.data", "user", "doc text"),
                ("messages[2].content[3].context", "user", "uploaded today"),
                ("messages[2].content[4].source.content[0].text", "user", "page"),
                ("messages[2].content[5].text", "user", "Thanks"),
                ("tools[0].input_schema.properties.city.description", "system", DESCRIPTION),
            ],
        )
        for endpoint in ("messages", "messages.count_tokens")
    ],
    (
        "messages",
        {"model": "m", "system": "Plain system", "messages": []},
        [("system", "system", "Plain system")],
    ),
    (
        "completions",
        {"model": "m", "prompt": ["one", "two", [1, 2, 3]], "suffix": "end", "max_tokens": 5},
        [("prompt[0]", "user", "one"), ("prompt[1]", "user", "two"), ("suffix", "user", "end")],
    ),
    ("completions", {"model": "m", "prompt": "solo"}, [("prompt", "user", "solo")]),
    (
        "embeddings",
        {"model": "m", "input": ["a", "b"]},
        [("input[0]", "user", "a"), ("input[1]", "user", "b")],
    ),
    ("embeddings", {"model": "m", "input": [[1, 2], [3]]}, []),
    ("gemini.generate_content", {"contents": [{"parts": [{"text": "x"}]}]}, []),
]


@pytest.mark.parametrize(("endpoint", "payload", "expected"), REQUESTS)
def test_request_slots_round_trip(
    endpoint: str, payload: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    body = copy.deepcopy(payload)
    slots = request_texts(endpoint, body)
    assert [(s.path, s.role, s.get()) for s in slots] == expected
    for i, slot in enumerate(slots):
        slot.set(f"<{i}>")
    assert [s.get() for s in slots] == [f"<{i}>" for i in range(len(slots))]
    # Put the originals back by the same slots: the body is then exactly as it was, so
    # setting touched nothing but the slots' own strings.
    for slot, (_, _, original) in zip(slots, expected, strict=True):
        slot.set(original)
    assert body == payload


def _set_paths(body: Any, paths: list[str]) -> list[str]:
    """The strings at ``paths`` read by plain indexing (independent of the slots)."""
    values = []
    for path in paths:
        node = body
        for part in path.replace("[", ".").replace("]", "").split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        values.append(node)
    return values


def test_setting_a_slot_changes_the_body_at_its_path() -> None:
    body = copy.deepcopy(MESSAGES)
    slots = request_texts("messages", body)
    for slot in slots:
        slot.set(slot.get().upper())
    assert _set_paths(body, [s.path for s in slots]) == [s.get() for s in slots]
    thinking = body["messages"][1]["content"][0]
    assert thinking["thinking"] == "HMM" and thinking["signature"] == "sig"
    assert body["messages"][1]["content"][1] == MESSAGES["messages"][1]["content"][1]
    assert body["messages"][2]["content"][2] == MESSAGES["messages"][2]["content"][2]  # image


RESPONSES_OUT: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "chat.completions",
        {
            "id": "c",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi there"}},
                {
                    "index": 1,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "Let me think",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "send", "arguments": '{"to": "x"}'},
                            }
                        ],
                    },
                    "logprobs": {"content": [{"token": "Hi", "logprob": -0.1}]},
                },
                {
                    "index": 2,
                    "message": {"role": "assistant", "content": "Second", "refusal": "No"},
                },
            ],
            "usage": {"prompt_tokens": 1},
        },
        [
            ("choices[0].message.content", "Hi there"),
            ("choices[1].message.reasoning_content", "Let me think"),
            ("choices[1].message.tool_calls[0].function.arguments", '{"to": "x"}'),
            ("choices[2].message.content", "Second"),
            ("choices[2].message.refusal", "No"),
        ],
    ),
    ("completions", {"choices": [{"index": 0, "text": "done"}]}, [("choices[0].text", "done")]),
    (
        "responses",
        {
            "output": [
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "Answer", "annotations": []},
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
                {"type": "function_call", "id": "fc", "name": "f", "arguments": '{"a": 1}'},
            ]
        },
        [
            ("output[1].content[0].text", "Answer"),
            ("output[1].content[1].refusal", "no"),
            ("output[2].arguments", '{"a": 1}'),
        ],
    ),
    (
        "messages",
        {
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "text", "text": "Hello!"},
                {"type": "tool_use", "id": "x", "name": "n", "input": {"to": "Jane"}},
            ]
        },
        [
            ("content[0].thinking", "t"),
            ("content[1].text", "Hello!"),
            ("content[2].input.to", "Jane"),
        ],
    ),
    ("embeddings", {"data": [{"embedding": [0.1]}]}, []),
    ("messages.count_tokens", {"input_tokens": 3}, []),
]


@pytest.mark.parametrize(("endpoint", "body", "expected"), RESPONSES_OUT)
def test_response_slots_round_trip(
    endpoint: str, body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    answer = copy.deepcopy(body)
    slots = response_texts(endpoint, answer)
    assert [(s.path, s.get()) for s in slots] == expected
    assert all(s.role == "assistant" for s in slots)
    for slot in slots:
        slot.set("[REDACTED]")
    assert _set_paths(answer, [s.path for s in slots]) == ["[REDACTED]"] * len(slots)
    for slot, (_, original) in zip(slots, expected, strict=True):
        slot.set(original)
    assert answer == body


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": "not a list"},
        {"messages": [None, 3, "x", {"role": 5, "content": [None, {"type": "text", "text": 7}]}]},
        {"input": {"unexpected": "object"}, "instructions": ["not", "a", "string"]},
        {"system": 12, "messages": [{"content": {"type": "text", "text": "object content"}}]},
        {"messages": [{"role": "assistant", "content": [{"type": {"x": 1}, "input": "x"}]}]},
        {"input": [{"type": ["function_call"], "data": "x", "result": "y", "id": {"a": "b"}}]},
    ],
)
def test_odd_shapes_yield_what_they_can_and_never_raise(payload: dict[str, Any]) -> None:
    for endpoint in ("chat.completions", "responses", "messages", "completions", "embeddings"):
        for slot in request_texts(endpoint, payload):
            assert isinstance(slot.get(), str)


@pytest.mark.parametrize(
    ("role", "read_as"),
    [
        ("system", "system"),
        ("developer", "system"),
        ("user", "user"),
        ("assistant", "assistant"),
        ("tool", "tool"),
        ("function", "tool"),
        ("Developer", "system"),
        ("narrator", "user"),  # unknown: read as the user's (the injection guard reads it)
        (None, "user"),
        ({"odd": 1}, "user"),
    ],
)
def test_roles_are_normalized(role: Any, read_as: str) -> None:
    for endpoint, payload in (
        ("chat.completions", {"messages": [{"role": role, "content": "hi"}]}),
        (
            "responses",
            {"input": [{"role": role, "content": [{"type": "input_text", "text": "hi"}]}]},
        ),
        ("messages", {"messages": [{"role": role, "content": [{"type": "text", "text": "hi"}]}]}),
    ):
        assert [slot.role for slot in request_texts(endpoint, payload)] == [read_as]


def test_a_field_the_gateway_does_not_know_is_read() -> None:
    """A new API field cannot carry text past the guards; request parameters are not text."""
    payload = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi", "future_field": {"note": "read me"}}],
        "future_top_level": ["me too"],
        "user": "user-7",
        "metadata": {"customer": "acme"},
        "stop": ["###"],
        "reasoning_effort": "high",
    }
    assert [slot.path for slot in request_texts("chat.completions", payload)] == [
        "messages[0].content",
        "messages[0].future_field.note",
        "future_top_level[0]",
    ]


def test_deep_bodies_are_walked_whole() -> None:
    """No recursion limit: a string at the bottom of a deeply nested body is still read."""
    node: Any = "the bottom"
    for _ in range(5000):
        node = {"content": [node]}
    payload = {"messages": [{"role": "user", "content": [node]}]}
    slots = request_texts("chat.completions", payload)
    assert [slot.get() for slot in slots] == ["the bottom"]
    assert slots[0].path.startswith("messages[0].content[0].content[0].content[0]")
