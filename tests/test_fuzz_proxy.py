"""Property-based fuzzing of the six proxy endpoints on the real gateway, on a real port.

Hostile requests (valid-shaped bodies with wrong types and extreme values, duplicate
keys, non-JSON, odd headers, bad keys in every place a key may go, streams) are sent
with the master key and with a virtual key that has a budget and rate limits, so the
admission path runs too. Whatever comes in, the answer is never a 5xx of the gateway's
own making, every error is JSON in the endpoint's dialect with a request id, nothing
leaks, and a 2xx stream is well-formed SSE ending in the dialect's final event.
Generation is derandomized, so a run is repeatable.
"""

from __future__ import annotations

import itertools
import json
import random
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from checks import assert_no_leak, dialect_error, sse_events
from fake_upstream import FakeUpstream
from harness import CLAUDE, EMBED, GPT, MASTER_KEY, GatewayServer

# Bounded so the whole file runs in about a minute on a busy 2-core machine.
SHAPED_EXAMPLES = 400
RAW_EXAMPLES = 100
HEADER_EXAMPLES = 120
FUZZ = settings(
    deadline=None,
    # No explain phase: it re-runs failing examples at length, for notes we print anyway.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)
CLIENT_TIMEOUT = 20.0
MAX_NESTING = 300
MAX_LONG_TEXT = 100_000
MAX_LONG_HEADER = 70_000
# A model with a known price (through the "claude-*" glob): a key with a budget is
# refused models without one, so this is how budget holds run.
PRICED = "claude-3-haiku-20240307"
KEY_PLACES = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
UPSTREAM_STATUSES = (502, 503, 504)

Headers = list[tuple[str, str | bytes]]


@dataclass(frozen=True)
class Spec:
    """One proxy endpoint: its dialect, a valid body, the models that may serve it (some
    through translation), the fields worth breaking, and the event a 2xx stream must end
    with (None: the endpoint does not stream)."""

    dialect: str
    valid: dict[str, Any]
    models: tuple[str, ...]
    fields: tuple[str, ...]
    final: bytes | None


MESSAGES = [{"role": "user", "content": "hi"}]
# Fields every endpoint gets wrong types for (most are ignored or passed through).
COMMON_FIELDS = (
    "messages",
    "model",
    "max_tokens",
    "n",
    "stream",
    "stream_options",
    "tools",
    "input",
    "prompt",
    "system",
    "metadata",
)
SPECS: dict[str, Spec] = {
    "/v1/chat/completions": Spec(
        "openai",
        {"model": GPT, "messages": MESSAGES},
        (GPT, CLAUDE, PRICED),
        (
            "max_completion_tokens",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "temperature",
            "top_p",
            "presence_penalty",
            "frequency_penalty",
            "top_logprobs",
            "logprobs",
            "seed",
            "stop",
            "user",
            "safety_identifier",
            "modalities",
            "audio",
            "web_search_options",
            "functions",
            "function_call",
            "logit_bias",
        ),
        b"data: [DONE]\n\n",
    ),
    "/v1/completions": Spec(
        "openai",
        {"model": GPT, "prompt": "hi"},
        (GPT,),
        ("best_of", "logprobs", "temperature", "echo", "suffix", "stop", "seed", "user"),
        b"data: [DONE]\n\n",
    ),
    "/v1/embeddings": Spec(
        "openai",
        {"model": EMBED, "input": "hi"},
        (EMBED, GPT),
        ("dimensions", "encoding_format", "user"),
        None,
    ),
    "/v1/responses": Spec(
        "openai",
        {"model": GPT, "input": "hi"},
        (GPT,),
        (
            "instructions",
            "max_output_tokens",
            "tool_choice",
            "temperature",
            "text",
            "reasoning",
            "previous_response_id",
            "store",
            "truncation",
        ),
        b"event: response.completed\n",
    ),
    "/v1/messages": Spec(
        "anthropic",
        {"model": CLAUDE, "max_tokens": 16, "messages": MESSAGES},
        (CLAUDE, PRICED, GPT, GPT),
        (
            "tool_choice",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "thinking",
            "output_config",
            "mcp_servers",
        ),
        b"event: message_stop\n",
    ),
    "/v1/messages/count_tokens": Spec(
        "anthropic",
        {"model": CLAUDE, "messages": MESSAGES},
        (CLAUDE, PRICED, GPT),
        ("tool_choice", "thinking", "output_config"),
        None,
    ),
}
PATHS = list(SPECS)
# Where a Claude model serves (the chat endpoint through translation).
PRICED_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens")


@dataclass
class Call:
    """One request to send: headers as a list (duplicates allowed), raw body bytes, and
    whether any header could carry a key (none at all must get 401)."""

    path: str
    headers: Headers
    body: bytes
    query: str = ""
    sent_key: bool = True

    def __repr__(self) -> str:
        shown = [(k, _clip(v)) for k, v in self.headers]
        return f"Call({self.path}{self.query}, headers={shown}, body={_clip(self.body)})"


def _clip(value: str | bytes, limit: int = 300) -> str:
    """A repr short enough for a failure report (bodies run to megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...<{len(value)} long>"


def say(text: str) -> None:
    """A note on the failing example (printed, outside Hypothesis)."""
    if currently_in_test_context():
        note(text)
    else:
        print(text)


# --------------------------------------------------------------------------- values

INT_EDGES = [
    0,
    -1,
    1,
    20,
    21,
    128,
    129,
    65_536,
    65_537,
    1_048_576,
    1_048_577,
    10_000_000,
    2**31 - 1,
    2**31,
    2**53 - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    10**30,
    -(10**30),
]
FLOAT_EDGES = [0.0, -0.0, 0.5, 1.0, 2.5, 1e16, 1e308, -1e308, 1.7976931348623157e308, 5e-324]
EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "\x00" * 16,
    "\x1b[31m",
    "\r\n\r\nHTTP/1.1 200 OK\r\n",
    "\u2028\u2029",
    "\ufeff",
    "\U0001d573",
    "gpt-test\x00",
    "claude-*",
    "../../../etc/passwd",
    "%s%n%x{0}",
    "{{model}}",
    "null",
    "true",
    "[DONE]",
    "data: [DONE]\n\n",
    "event: message_stop\ndata: {}\n\n",
    "sk-tw-0000000000000000",
    "user",
    "assistant",
    "system",
    "tool",
    "function",
    "text",
    "image",
    "tool_use",
    "tool_result",
    "base64",
]
LONG_UNITS = ["a", "\x00", "é", "\U0001d573", "word ", "data: x\n\n", "\u2028", '"\\', "[{"]

chars = st.characters(codec="utf-8")  # every character but lone surrogates
hostile_ints = st.one_of(st.sampled_from(INT_EDGES), st.integers(), st.integers(-(2**70), 2**70))
hostile_floats = st.one_of(
    st.sampled_from(FLOAT_EDGES), st.floats(allow_nan=False, allow_infinity=False)
)
short_text = st.one_of(st.text(chars, max_size=24), st.sampled_from(EDGE_STRINGS))
long_text = st.builds(
    lambda unit, size: (unit * (size // len(unit) + 1))[:size],
    st.sampled_from(LONG_UNITS),
    st.integers(1_000, MAX_LONG_TEXT),
)
text = st.one_of(*[short_text] * 5, long_text)
scalars = st.one_of(st.none(), st.booleans(), hostile_ints, hostile_floats, short_text)


def nest(depth: int, shape: str, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` arrays or objects (or both, alternating)."""
    value = leaf
    for level in range(depth):
        as_list = shape == "list" or (shape == "mixed" and level % 2 == 0)
        value = [value] if as_list else {"a": value}
    return value


# Depths around 255 matter: orjson reads 1024 levels but writes only 254.
depths = st.one_of(st.integers(1, MAX_NESTING), st.integers(240, MAX_NESTING))
deep = st.builds(nest, depths, st.sampled_from(["list", "dict", "mixed"]), scalars)


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Arrays and objects of ``inner``."""
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4))


json_values = st.recursive(scalars, containers, max_leaves=10)
hostile = st.one_of(
    json_values, json_values, json_values, deep, long_text, st.sampled_from([{}, [], [{}], [[]]])
)

# --------------------------------------------------------------------------- shapes


# Every JSON type with about the same weight, so each field meets each wrong type.
wrong_types = st.one_of(
    hostile_ints,
    hostile_floats,
    st.booleans(),
    short_text,
    st.lists(scalars, min_size=1, max_size=3),
    st.dictionaries(short_text, scalars, min_size=1, max_size=3),
    st.sampled_from([None, {}, [], ""]),
    st.one_of(deep, long_text, hostile),
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``value``, sometimes of another type."""
    return st.one_of(value, value, wrong_types)


objects = st.one_of(
    st.dictionaries(short_text, hostile, max_size=3),
    deep.map(lambda value: {"a": value}),
    st.just({}),
)
leaf = maybe(text)
URLS = [
    "https://example.com/a.png",
    "http://",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:application/pdf;base64,JVBERi0=",
    "data:image/png;base64,",
    "data:image/png;base64",
    "data:;base64,AAAA",
    "data:image/svg+xml,<svg/>",
    "data:",
    "file:///etc/passwd",
]
urls = maybe(st.one_of(st.sampled_from(URLS), text))
# Tool call arguments: a string of JSON (often an object, sometimes deep), or not.
arguments = st.one_of(
    objects.map(lambda value: json.dumps(value)), text, hostile, st.sampled_from(["", "{}", "[]"])
)
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": leaf})
openai_parts = st.lists(
    st.one_of(
        text_part,
        st.fixed_dictionaries({"type": st.just("refusal"), "refusal": leaf}),
        st.fixed_dictionaries(
            {"type": st.just("image_url"), "image_url": maybe(st.fixed_dictionaries({"url": urls}))}
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("file"),
                "file": maybe(st.fixed_dictionaries({"file_data": urls, "filename": leaf})),
            }
        ),
        st.fixed_dictionaries({"type": maybe(st.just("input_audio")), "input_audio": objects}),
        hostile,
    ),
    max_size=3,
)
openai_content = st.one_of(st.none(), text, openai_parts, hostile)
openai_tool_call = maybe(
    st.fixed_dictionaries(
        {
            "id": leaf,
            "type": maybe(st.just("function")),
            "function": maybe(st.fixed_dictionaries({"name": leaf, "arguments": arguments})),
        }
    )
)
openai_message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user"]), "content": openai_content}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant")},
        optional={
            "content": openai_content,
            "tool_calls": maybe(st.lists(openai_tool_call, max_size=3)),
            "refusal": leaf,
            "function_call": objects,
        },
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "tool_call_id": leaf}, optional={"content": openai_content}
    ),
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["function", "ipython", ""]), hostile)},
        optional={"content": openai_content, "name": leaf},
    ),
)
sources = maybe(
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["base64", "url", "text"]))},
        optional={
            "media_type": maybe(st.sampled_from(["image/png", "application/pdf", "text/plain"])),
            "data": leaf,
            "url": urls,
        },
    )
)
text_blocks = st.lists(st.one_of(text_part, hostile), max_size=3)
anthropic_blocks = st.lists(
    st.one_of(
        text_part,
        st.fixed_dictionaries({"type": st.just("image"), "source": sources}),
        st.fixed_dictionaries(
            {"type": st.just("document"), "source": sources}, optional={"title": leaf}
        ),
        st.fixed_dictionaries(
            {"type": st.just("tool_use"), "id": leaf, "name": leaf, "input": maybe(objects)}
        ),
        st.fixed_dictionaries(
            {"type": st.just("tool_result"), "tool_use_id": leaf},
            optional={"content": st.one_of(text, text_blocks, hostile), "is_error": scalars},
        ),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["thinking", "redacted_thinking"])},
            optional={"thinking": leaf, "signature": leaf, "data": leaf},
        ),
        st.fixed_dictionaries({"type": hostile}, optional={"text": leaf}),
        hostile,
    ),
    max_size=3,
)
anthropic_message = st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "assistant"]))},
    optional={"content": st.one_of(text, anthropic_blocks, hostile)},
)
conversations = {
    "openai": st.lists(openai_message, min_size=1, max_size=5),
    "anthropic": st.lists(anthropic_message, min_size=1, max_size=5),
}
messages = st.one_of(
    conversations["openai"],
    conversations["anthropic"],
    st.lists(st.one_of(openai_message, anthropic_message, hostile), max_size=4),
    hostile,
)
tools = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "type": maybe(st.just("function")),
                    "function": maybe(
                        st.fixed_dictionaries(
                            {"name": leaf},
                            optional={
                                "description": leaf,
                                "parameters": maybe(objects),
                                "strict": scalars,
                            },
                        )
                    ),
                }
            ),
            st.fixed_dictionaries(
                {"name": leaf},
                optional={
                    "type": maybe(st.sampled_from(["custom", "web_search_20250305"])),
                    "description": leaf,
                    "input_schema": maybe(objects),
                    "strict": scalars,
                },
            ),
            hostile,
        ),
        max_size=3,
    ),
    hostile,
)
# Valid shapes whose values are hostile only within their type: any text (NUL, control
# characters, sometimes 100 kB), objects of any depth where the API takes free-form ones.
# Conversations follow one template (a tool call and its result), so each example
# reaches the translators with every kind of turn.
ctext = st.one_of(*[short_text] * 7, long_text)
cobject = objects
clean_text_part = st.fixed_dictionaries({"type": st.just("text"), "text": ctext})
clean_openai_content = st.one_of(ctext, st.lists(clean_text_part, min_size=1, max_size=2))
clean_openai_parts = st.lists(
    st.one_of(
        clean_text_part,
        st.fixed_dictionaries(
            {
                "type": st.just("image_url"),
                "image_url": st.fixed_dictionaries(
                    {"url": st.sampled_from(URLS[:3])}, optional={"detail": ctext}
                ),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("file"),
                "file": st.fixed_dictionaries(
                    {"file_data": st.just(URLS[3])}, optional={"filename": ctext}
                ),
            }
        ),
    ),
    min_size=1,
    max_size=3,
)
clean_sources = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/png"), "data": ctext}
    ),
    st.fixed_dictionaries({"type": st.just("url"), "url": st.sampled_from(URLS[:2])}),
)
clean_anthropic_parts = st.lists(
    st.one_of(
        clean_text_part,
        st.fixed_dictionaries({"type": st.just("image"), "source": clean_sources}),
        st.fixed_dictionaries(
            {
                "type": st.just("document"),
                "source": st.fixed_dictionaries(
                    {"type": st.just("text"), "media_type": st.just("text/plain"), "data": ctext}
                ),
            },
            optional={"title": ctext},
        ),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def clean_openai_conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    """[system], user, assistant with tool calls, their results, user."""
    turns: list[dict[str, Any]] = []
    if draw(st.booleans()):
        role = draw(st.sampled_from(["system", "developer"]))
        turns.append({"role": role, "content": draw(clean_openai_content)})
    turns.append({"role": "user", "content": draw(st.one_of(ctext, clean_openai_parts))})
    if draw(st.booleans()):
        ids = draw(st.lists(ctext, min_size=1, max_size=2))
        calls = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": draw(ctext), "arguments": json.dumps(draw(cobject))},
            }
            for call_id in ids
        ]
        content = draw(st.one_of(st.none(), clean_openai_content))
        turns.append({"role": "assistant", "content": content, "tool_calls": calls})
        for call_id in ids:
            turns.append(
                {"role": "tool", "tool_call_id": call_id, "content": draw(clean_openai_content)}
            )
        turns.append({"role": "user", "content": draw(ctext)})
    return turns


@st.composite
def clean_anthropic_conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    """user, assistant with tool uses (and thinking), their results, user."""
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": draw(st.one_of(ctext, clean_anthropic_parts))}
    ]
    if draw(st.booleans()):
        ids = draw(st.lists(ctext, min_size=1, max_size=2))
        blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            blocks.append({"type": "thinking", "thinking": draw(ctext), "signature": draw(ctext)})
        if draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(ctext)})
        blocks += [
            {"type": "tool_use", "id": call_id, "name": draw(ctext), "input": draw(cobject)}
            for call_id in ids
        ]
        turns.append({"role": "assistant", "content": blocks})
        results: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": draw(st.one_of(ctext, st.lists(clean_text_part, max_size=2))),
                "is_error": draw(st.booleans()),
            }
            for call_id in ids
        ]
        turns.append(
            {"role": "user", "content": results + draw(st.lists(clean_text_part, max_size=1))}
        )
    return turns


clean_tools = {
    "openai": st.lists(
        st.fixed_dictionaries(
            {
                "type": st.just("function"),
                "function": st.fixed_dictionaries(
                    {"name": ctext}, optional={"description": ctext, "parameters": cobject}
                ),
            }
        ),
        min_size=1,
        max_size=3,
    ),
    "anthropic": st.lists(
        st.fixed_dictionaries(
            {"name": ctext}, optional={"description": ctext, "input_schema": cobject}
        ),
        min_size=1,
        max_size=3,
    ),
}
clean_conversations = {
    "openai": clean_openai_conversation(),
    "anthropic": clean_anthropic_conversation(),
}
# Fields that take free text or free-form objects, for the clean mode.
CLEAN_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "user": ctext,
    "stop": st.one_of(ctext, st.lists(ctext, max_size=4)),
    "stop_sequences": st.lists(ctext, max_size=4),
    "metadata": st.one_of(st.fixed_dictionaries({"user_id": ctext}), cobject),
    "instructions": ctext,
    "suffix": ctext,
    "system": st.one_of(ctext, st.lists(clean_text_part, max_size=3)),
    "prompt": st.one_of(ctext, st.lists(ctext, min_size=1, max_size=3)),
    "input": st.one_of(ctext, st.lists(ctext, min_size=1, max_size=3)),
    "response_format": st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries({"name": ctext, "schema": cobject}),
        }
    ),
    "output_config": st.fixed_dictionaries(
        {"format": st.fixed_dictionaries({"type": st.just("json_schema"), "schema": cobject})}
    ),
    "tool_choice": st.sampled_from(["auto", "none"]),
    "temperature": st.floats(0, 2),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
}

numbers = st.one_of(hostile_ints, hostile_floats, st.booleans(), st.none(), st.just("16"))
flags = st.one_of(st.booleans(), st.none(), st.sampled_from([0, 1, "true", "false", [], {}]))
models = st.one_of(
    st.sampled_from([GPT, CLAUDE, EMBED, PRICED]),
    st.sampled_from([GPT, CLAUDE, EMBED, PRICED]),
    st.sampled_from([GPT, CLAUDE, EMBED, PRICED]),
    st.sampled_from(["claude-fuzz-1", "claude-*", "gpt-unknown", "x" * 201, "gpt-test "]),
    hostile,
)
# What each field gets besides arbitrary hostile values: near-valid shapes of its type.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": models,
    "messages": messages,
    "stream": flags,
    "stream_options": st.one_of(
        st.fixed_dictionaries({"include_usage": flags}), st.dictionaries(short_text, hostile)
    ),
    "tools": tools,
    "functions": tools,
    "tool_choice": st.one_of(
        st.sampled_from(["auto", "none", "required", "any"]),
        st.fixed_dictionaries(
            {"type": maybe(st.sampled_from(["auto", "any", "none", "tool", "function"]))},
            optional={
                "name": leaf,
                "function": maybe(st.fixed_dictionaries({"name": leaf})),
                "disable_parallel_tool_use": flags,
            },
        ),
    ),
    "response_format": st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["text", "json_object", "json_schema"]))},
        optional={
            "json_schema": maybe(
                st.fixed_dictionaries({"name": leaf}, optional={"schema": maybe(objects)})
            )
        },
    ),
    "output_config": st.fixed_dictionaries(
        {},
        optional={
            "effort": leaf,
            "format": maybe(
                st.fixed_dictionaries(
                    {"type": maybe(st.just("json_schema"))}, optional={"schema": maybe(objects)}
                )
            ),
        },
    ),
    "input": st.one_of(text, st.lists(st.one_of(text, openai_message, hostile), max_size=4)),
    "prompt": st.one_of(text, st.lists(st.one_of(text, hostile_ints), max_size=4)),
    "system": st.one_of(text, anthropic_blocks),
    "metadata": st.one_of(
        st.fixed_dictionaries({"user_id": leaf}), st.dictionaries(short_text, hostile, max_size=4)
    ),
    "thinking": st.fixed_dictionaries(
        {"type": maybe(st.just("enabled")), "budget_tokens": numbers}
    ),
    "stop": st.one_of(text, st.lists(leaf, max_size=5)),
    "stop_sequences": st.lists(leaf, max_size=5),
    "logit_bias": st.dictionaries(short_text, numbers, max_size=4),
    "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
    "mcp_servers": st.lists(objects, max_size=2),
}
for _name in (
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "best_of",
    "temperature",
    "top_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "logprobs",
    "seed",
    "dimensions",
):
    FIELD_VALUES[_name] = numbers
for _name in ("echo", "store", "parallel_tool_calls"):
    FIELD_VALUES[_name] = flags


def field_value(name: str) -> st.SearchStrategy[Any]:
    """A value for field ``name``: near-valid for its type, or of any type at all."""
    return st.one_of(FIELD_VALUES.get(name, text), wrong_types)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; stdlib json writes integers of any size (orjson cannot)."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False).encode()


def encode_pairs(pairs: list[tuple[str, Any]], ascii_only: bool) -> bytes:
    """A JSON object written from pairs, so keys may repeat."""
    members = [encode(k, ascii_only) + b":" + encode(v, ascii_only) for k, v in pairs]
    return b"{" + b",".join(members) + b"}"


# --------------------------------------------------------------------------- bodies


def node_paths(value: Any, limit: int = 8) -> list[tuple[Any, ...]]:
    """Paths (keys and indices) to the nodes inside ``value``, down to ``limit`` levels."""
    paths: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict | list) or len(path) >= limit:
            continue
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            paths.append((*path, key))
            stack.append((child, (*path, key)))
    return paths


DELETE = object()


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the node at ``path`` replaced by ``new`` (or deleted),
    copying only the containers on the path (strategies may share the rest)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if not rest and new is DELETE:
        del copy[head]
    else:
        copy[head] = replaced(value[head], rest, new)
    return copy


@st.composite
def clean_body(draw: st.DrawFn, spec: Spec, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a drawn conversation, tools and fields of the right types."""
    body = dict(body)
    if "messages" in body:
        body["messages"] = draw(clean_conversations[spec.dialect])
        if draw(st.booleans()):
            body["tools"] = draw(clean_tools[spec.dialect])
    for name in (*spec.fields, *COMMON_FIELDS):
        if name in CLEAN_FIELDS and draw(st.booleans()):
            body[name] = draw(CLEAN_FIELDS[name])
    return body


@st.composite
def shaped_body(draw: st.DrawFn, path: str) -> dict[str, Any]:
    """The endpoint's valid body, for any model that may serve it (so translation runs
    too), changed in one of four ways: right types with hostile values throughout
    ("clean"); the same with one node anywhere in it of another type or gone
    ("mutant"); one field of any value ("one"); several fields broken ("many")."""
    spec = SPECS[path]
    body = dict(spec.valid, model=draw(st.sampled_from(spec.models)))
    mode = draw(st.sampled_from(["clean", "clean", "mutant", "mutant", "one", "many"]))
    say(f"mode: {mode}")
    if mode in ("clean", "mutant"):
        body = draw(clean_body(spec, body))
    if mode == "mutant":
        field = draw(st.sampled_from(sorted(body)))
        paths = [(field,)] + [(field, *inner) for inner in node_paths(body[field])]
        where = draw(st.sampled_from(paths))
        new = DELETE if draw(st.integers(0, 5)) == 0 else draw(wrong_types)
        body = replaced(body, where, new)
    elif mode == "one":
        name = draw(st.sampled_from(sorted({*spec.fields, *spec.valid, *COMMON_FIELDS})))
        body[name] = draw(field_value(name))
    elif mode == "many":
        if "messages" in body and draw(st.booleans()):
            dialect = draw(st.sampled_from([spec.dialect, spec.dialect, "openai", "anthropic"]))
            body["messages"] = draw(conversations[dialect])
        names = sorted(set(COMMON_FIELDS) | set(spec.fields) | set(spec.valid))
        for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
            if draw(st.integers(0, 9)) == 0:
                body.pop(name, None)
            else:
                body[name] = draw(field_value(name))
        body.update(draw(st.dictionaries(short_text, hostile, max_size=2)))
    if spec.final is not None and draw(st.integers(0, 2)) == 0:
        body["stream"] = True
        if draw(st.booleans()):
            body["stream_options"] = draw(field_value("stream_options"))
    return body


NON_JSON = [
    b"",
    b"  \n\t ",
    b'{"model": "gpt-test", "messages": [',
    b'{"model": "gpt-test",}',
    b"{'model': 'gpt-test'}",
    b'{"model": "gpt-test"} trailing',
    b'{"model": "gpt-test", "temperature": NaN}',
    b'{"model": "gpt-test", "temperature": Infinity}',
    b'{"model": "gpt-test", "max_tokens": 1e400}',
    b'{"model": "gpt-test" /* comment */}',
    b'\xef\xbb\xbf{"model": "gpt-test"}',
    b'{"model": "\xff\xfe"}',
    b'{"model": "\\ud800"}',
    b'{"model": "gpt-test", "x": "\\uZZZZ"}',
    '{"model": "gpt-test"}'.encode("utf-16"),
    b"model=gpt-test&prompt=hi",
    b"\x00" * 64,
    b"[" * 2000 + b"]" * 2000,
    b'{"a":' * 1100 + b"1" + b"}" * 1100,
]


@st.composite
def raw_body(draw: st.DrawFn, path: str) -> bytes:
    """Bytes that are not a plain JSON object: duplicate keys, non-JSON, non-objects."""
    kind = draw(st.sampled_from(["duplicates", "duplicates", "non-json", "cut", "non-object"]))
    ascii_only = draw(st.booleans())
    if kind == "duplicates":
        pairs = list(draw(shaped_body(path)).items())
        for _ in range(draw(st.integers(1, 4))):
            name = draw(st.sampled_from([*SPECS[path].valid, "stream", "max_tokens", "n"]))
            value = draw(
                st.one_of(field_value(name), st.sampled_from(list(SPECS[path].valid.values())))
            )
            pairs.insert(draw(st.integers(0, len(pairs))), (name, value))
        return encode_pairs(pairs, ascii_only)
    if kind == "non-json":
        return draw(st.one_of(st.sampled_from(NON_JSON), st.binary(max_size=200)))
    if kind == "cut":
        whole = encode(draw(shaped_body(path)), ascii_only)
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    value = draw(hostile.filter(lambda v: not isinstance(v, dict)))
    return encode(value, ascii_only)


# --------------------------------------------------------------------------- headers

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
header_value_bytes = st.binary(max_size=64).map(
    lambda raw: bytes(b if 0x21 <= b <= 0x7E or b >= 0x80 else 0x20 for b in raw).strip()
)
long_header = st.builds(
    lambda unit, size: (unit * (size // len(unit) + 1))[:size],
    st.sampled_from([b"a", b"\xe9", b"x-y ", b"2023-06-01,"]),
    st.integers(1_000, MAX_LONG_HEADER),
).map(lambda raw: raw.strip() or b"a")
header_values = st.one_of(
    header_value_bytes,
    st.sampled_from([b"2023-06-01", b"tools-2024-04-04", b"1", b"application/json", b"req_x"]),
    long_header,
)
header_names = st.one_of(
    st.text(TOKEN_CHARS, min_size=1, max_size=20).map(lambda name: "x-fuzz-" + name),
    st.sampled_from(
        [
            "anthropic-version",
            "anthropic-beta",
            "openai-organization",
            "openai-project",
            "x-request-id",
            "x-forwarded-for",
            "x-stainless-retry-count",
            "accept",
            "accept-encoding",
            "user-agent",
            "cookie",
            "content-encoding",
            "content-type",
            "idempotency-key",
        ]
    ),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/event-stream",
            "*/*",
            "application/jsonx",
        ]
    ),
    header_value_bytes,
)


def key_header(place: str, key: str | bytes, scheme: str = "Bearer ") -> tuple[str, str | bytes]:
    """The header carrying ``key`` in ``place``."""
    if place != "authorization":
        return place, key
    raw = key.encode("latin-1") if isinstance(key, str) else key
    return place, (scheme.encode() + raw).strip()  # HTTP trims values; h11 insists


@st.composite
def bad_key(draw: st.DrawFn, virtual: str) -> str | bytes:
    """A key that is not one the gateway issued (or an issued one mangled)."""
    good = draw(st.sampled_from([MASTER_KEY, virtual]))
    key: str | bytes = draw(
        st.one_of(
            st.sampled_from(
                [
                    "sk-tw-",
                    "sk-tw-0000000000000000000000000000",
                    "sk-ant-api03-fuzzfuzzfuzz",
                    "sk-proj-fuzzfuzzfuzz",
                    "Bearer",
                    "null",
                    good[:-1],
                    good + "x",
                    good.upper(),
                    good[:-1] + ("0" if good[-1] != "0" else "1"),
                    "sk-tw-" + "a" * 5000,
                ]
            ),
            header_value_bytes,
            long_header,
        )
    )
    return key


@st.composite
def key_headers(draw: st.DrawFn, virtual: str) -> tuple[Headers, bool]:
    """Keys in any of the four places: none, good, bad, or several that disagree.
    Returns the headers and whether any header could carry a key."""
    headers: Headers = []
    for _ in range(draw(st.integers(0, 3))):
        place = draw(st.sampled_from(KEY_PLACES))
        key = draw(st.one_of(st.sampled_from([MASTER_KEY, virtual]), bad_key(virtual)))
        scheme = draw(st.sampled_from(["Bearer ", "bearer ", "Bearer  ", "Basic ", "Token ", ""]))
        headers.append(key_header(place, key, scheme))
    return headers, bool(headers)


@st.composite
def odd_headers(draw: st.DrawFn) -> Headers:
    """Content type (or none), unknown and long headers, an anthropic-version anywhere."""
    headers: Headers = []
    content_type = draw(content_types)
    if content_type is not None:
        headers.append(("content-type", content_type))
    for _ in range(draw(st.integers(0, 3))):
        headers.append((draw(header_names), draw(header_values)))
    return headers


# --------------------------------------------------------------------------- calls


@st.composite
def shaped_calls(draw: st.DrawFn, path: str, virtual: str) -> Call:
    """A valid-shaped body with hostile values, sent with a good key (the virtual key
    mostly with the priced model: it is refused models without a price)."""
    body = draw(shaped_body(path))
    keys = [MASTER_KEY, virtual] if body.get("model") == PRICED else [MASTER_KEY] * 5 + [virtual]
    key = draw(st.sampled_from(keys))
    place = draw(st.sampled_from(KEY_PLACES))
    headers: Headers = [("content-type", "application/json"), key_header(place, key)]
    if draw(st.integers(0, 3)) == 0:
        headers += draw(odd_headers())
    return Call(path, headers, encode(body, draw(st.booleans())))


@st.composite
def raw_calls(draw: st.DrawFn, path: str, virtual: str) -> Call:
    """Bytes that are not a plain JSON object, sent with a good key."""
    key = draw(st.sampled_from([MASTER_KEY, virtual]))
    headers: Headers = [("content-type", "application/json"), key_header("authorization", key)]
    return Call(path, headers, draw(raw_body(path)))


@st.composite
def header_calls(draw: st.DrawFn, path: str, virtual: str) -> Call:
    """Odd headers and keys (missing, garbage, wrong prefix, in any place) on a body that
    is valid or nearly so."""
    keys, sent_key = draw(key_headers(virtual))
    headers = draw(odd_headers()) + keys
    if draw(st.integers(0, 2)) == 0:
        body = encode(draw(shaped_body(path)), True)
    else:
        body = encode(dict(SPECS[path].valid, stream=draw(st.booleans())), True)
    query = draw(st.sampled_from(["", "", "?key=" + MASTER_KEY[:-2], "?api-version=2024-01-01"]))
    headers = draw(st.permutations(headers))
    return Call(path, list(headers), body, query, sent_key)


# --------------------------------------------------------------------------- checks

# 502/503/504 that said the upstream failed: allowed, but the fake is healthy, so these
# are reported at the end of the run.
UPSTREAM_FAILURES: list[str] = []
SEEDS = itertools.count(1)
# (path, status, streamed) -> count, printed at the end (``-s``) to show what was reached.
SEEN: Counter[tuple[str, int, bool]] = Counter()


def check(response: httpx.Response, call: Call, virtual: str) -> None:
    """The properties every answer has, whatever was sent."""
    spec = SPECS[call.path]
    status = response.status_code
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    SEEN[call.path, status, streamed] += 1
    say(f"-> {status} {response.headers.get('content-type')} {_clip(response.content, 600)}")
    assert_no_leak(response.content)
    assert virtual not in response.text and virtual[-8:] not in response.text
    if status >= 500:
        assert status in UPSTREAM_STATUSES, f"{status} from the gateway: {response.text}"
        assert "upstream" in response.text.lower(), f"{status} not about the upstream"
        UPSTREAM_FAILURES.append(f"{call!r} -> {status} {response.text[:300]}")
    if status >= 300:
        dialect_error(spec.dialect, response, status)
        return
    assert response.headers.get("x-request-id", "").startswith("req_"), response.headers
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        check_stream(response.content, spec)
        return
    assert response.headers.get("content-type", "").startswith("application/json")
    assert isinstance(response.json(), dict)
    if spec.final is not None and asked_to_stream(call.body):
        raise AssertionError(f"a 2xx answer to a stream request is not SSE: {response.text}")


def asked_to_stream(body: bytes) -> bool:
    """Whether the body unambiguously asks for a stream."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("stream") is True


def check_stream(raw: bytes, spec: Spec) -> None:
    """Well-formed SSE: whole events of known fields, JSON data, no error event, and the
    dialect's final event last."""
    assert spec.final is not None, "this endpoint does not stream"
    assert raw.endswith(b"\n\n"), raw[-300:]
    events = sse_events(raw.replace(b"\r\n", b"\n"))
    assert events, "an empty stream"
    for event in events:
        for line in event.strip(b"\n").split(b"\n"):
            name = line.split(b":", 1)[0]
            assert name in (b"", b"event", b"data", b"id", b"retry"), event
            if name == b"data":
                data = line[len(b"data:") :].strip()
                if data != b"[DONE]":
                    payload = json.loads(data)
                    assert not (isinstance(payload, dict) and "error" in payload), event
        assert not event.startswith(b"event: error"), event
    assert events[-1].startswith(spec.final), events[-1]


def send(client: httpx.Client, call: Call) -> httpx.Response:
    """POST the call exactly as built."""
    say(repr(call))
    headers = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in call.headers]
    return client.post(call.path + call.query, content=call.body, headers=headers)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """One HTTP client for the whole run (no key by default)."""
    with httpx.Client(base_url=gateway.url, timeout=CLIENT_TIMEOUT) as http:
        yield http


@pytest.fixture(scope="module")
def virtual_key(client: httpx.Client) -> str:
    """A virtual key with a budget and rate limits, so admission runs its checks."""
    body = {"name": "fuzz", "max_budget_usd": "5", "rpm": 100_000, "tpm": 10_000_000}
    response = client.post(
        "/api/v1/keys", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.fixture(autouse=True)
def _quiet_upstream(fake_server: FakeUpstream) -> Iterator[None]:
    """The fake answers normally and forgets what it saw (a run sends megabytes)."""
    fake_server.reset()
    yield
    fake_server.reset()


def run(client: httpx.Client, fake: FakeUpstream, call: Call, virtual: str) -> None:
    """Send one call and check the answer."""
    fake.reset()
    # Hypothesis reseeds the global PRNG to the same state for every example, and the
    # in-process gateway draws its request ids from it: without this every example
    # would reuse the same ids (and spend rows with a repeated id are dropped).
    random.seed(next(SEEDS))
    response = send(client, call)
    check(response, call, virtual)
    if not call.sent_key and response.status_code != 431:
        assert response.status_code == 401, "no key was sent"


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", PATHS)
def test_shaped_bodies(
    client: httpx.Client, fake_server: FakeUpstream, virtual_key: str, path: str
) -> None:
    """Valid-shaped bodies with hostile values (types, sizes, nesting, streams)."""

    @settings(FUZZ, max_examples=SHAPED_EXAMPLES)
    @given(call=shaped_calls(path, virtual_key))
    def fuzz(call: Call) -> None:
        run(client, fake_server, call, virtual_key)

    fuzz()


@pytest.mark.parametrize("path", PATHS)
def test_raw_bodies(
    client: httpx.Client, fake_server: FakeUpstream, virtual_key: str, path: str
) -> None:
    """Duplicate keys, non-JSON, cut JSON and JSON that is not an object."""

    @settings(FUZZ, max_examples=RAW_EXAMPLES)
    @given(call=raw_calls(path, virtual_key))
    def fuzz(call: Call) -> None:
        run(client, fake_server, call, virtual_key)

    fuzz()


@pytest.mark.parametrize("path", PATHS)
def test_headers_and_keys(
    client: httpx.Client, fake_server: FakeUpstream, virtual_key: str, path: str
) -> None:
    """Odd headers, and keys missing, mangled or disagreeing in all four places."""

    @settings(FUZZ, max_examples=HEADER_EXAMPLES)
    @given(call=header_calls(path, virtual_key))
    def fuzz(call: Call) -> None:
        run(client, fake_server, call, virtual_key)

    fuzz()


# Minimal reproductions of failures the fuzz found, as plain examples so that each shows
# on its own (Hypothesis reports one failure per test). Each fails until fixed in src/.
FOUND: dict[str, tuple[str, dict[str, Any]]] = {
    # anthropic_to_openai_messages._tool_call: orjson.dumps of a tool_use input nested
    # deeper than orjson writes (254 levels) raises outside the guard in forward.prepare.
    "messages-to-openai-deep-tool-input": (
        "/v1/messages",
        {
            "model": GPT,
            "max_tokens": 16,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "f", "input": nest(300, "dict", 1)}
                    ],
                },
            ],
        },
    ),
    # anthropic_to_openai.request: list(body["stop_sequences"]) on a number.
    "messages-to-openai-stop-sequences-number": (
        "/v1/messages",
        {"model": GPT, "max_tokens": 16, "messages": MESSAGES, "stop_sequences": 5},
    ),
    # openai_to_anthropic._convert_response_format: .get on a json_schema that is no object.
    "chat-to-anthropic-json-schema-not-object": (
        "/v1/chat/completions",
        {
            "model": CLAUDE,
            "messages": MESSAGES,
            "response_format": {"type": "json_schema", "json_schema": "x"},
        },
    ),
}


@pytest.mark.parametrize("case", list(FOUND))
def test_found_by_the_fuzz(
    client: httpx.Client, fake_server: FakeUpstream, virtual_key: str, case: str
) -> None:
    """Each failure the fuzz found, checked by the same properties."""
    path, body = FOUND[case]
    auth = ("authorization", f"Bearer {MASTER_KEY}")
    call = Call(path, [("content-type", "application/json"), auth], encode(body, True))
    run(client, fake_server, call, virtual_key)


def test_still_serving_after_the_fuzz(client: httpx.Client, virtual_key: str) -> None:
    """No wedge: plain calls in both dialects, with both keys, and readiness still pass."""
    for key in (MASTER_KEY, virtual_key):
        auth = {"authorization": f"Bearer {key}"}
        for path in PRICED_PATHS:
            response = client.post(path, json={**SPECS[path].valid, "model": PRICED}, headers=auth)
            assert response.status_code == 200, response.text
    assert client.get("/health/ready").status_code == 200
    for (path, status, streamed), count in sorted(SEEN.items()):
        print(f"{path:28} {status} {'stream' if streamed else '      '} {count:5}")
    if UPSTREAM_FAILURES:
        warnings.warn(
            "upstream failures from a healthy fake:\n" + "\n".join(UPSTREAM_FAILURES),
            stacklevel=1,
        )
