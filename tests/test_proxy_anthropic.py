"""The official Anthropic SDK against the real gateway: messages, count_tokens, models."""

from __future__ import annotations

import gzip

import anthropic
import bpe_openai
import httpx
import orjson

from fake_upstream import (
    COMPLETION_TOKENS,
    COUNT_TOKENS,
    PROMPT_TOKENS,
    TEXT,
    Fail,
    FakeUpstream,
    Received,
)
from harness import ANTHROPIC_UPSTREAM_KEY, CLAUDE, CLAUDE_UPSTREAM, GPT, MASTER_KEY

MESSAGES = [{"role": "user", "content": "Say hello."}]
COUNT_PATH = "/v1/messages/count_tokens"


def assert_forwarded_as_anthropic(
    received: Received, path: str, upstream_model: str, version: str | None = None
) -> None:
    """Our provider key in x-api-key, the upstream model id, the client's API version, and
    nothing of the client's key."""
    assert received.method == "POST"
    assert received.path == path
    assert received.body["model"] == upstream_model
    assert received.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
    if version is not None:
        assert received.headers["anthropic-version"] == version
    else:
        assert received.headers["anthropic-version"]
    assert "authorization" not in received.headers
    for name, value in received.headers.items():
        assert MASTER_KEY not in value, name
        assert not name.startswith("x-stainless"), name


def test_messages_create(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=100,
        messages=MESSAGES,
        system="Be brief.",
        extra_body={"temperature": 0.3},
    )
    assert raw.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_")
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == PROMPT_TOKENS
    assert message.usage.output_tokens == COMPLETION_TOKENS
    assert message.model == CLAUDE_UPSTREAM

    received = fake.last()
    sent_version = raw.http_request.headers["anthropic-version"]
    assert_forwarded_as_anthropic(received, "/v1/messages", CLAUDE_UPSTREAM, sent_version)
    assert received.body["system"] == "Be brief."
    assert received.body["max_tokens"] == 100
    assert received.body["temperature"] == 0.3


def test_version_and_beta_headers_are_forwarded(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=MESSAGES,
        extra_headers={
            "anthropic-version": "2024-01-01",
            "anthropic-beta": "prompt-caching-2024-07-31,tools-2024-04-04",
        },
    )
    received = fake.last()
    assert received.headers["anthropic-version"] == "2024-01-01"
    assert received.headers["anthropic-beta"] == "prompt-caching-2024-07-31,tools-2024-04-04"


def test_default_version_when_client_sends_none(http: httpx.Client, fake: FakeUpstream) -> None:
    body = {"model": CLAUDE, "max_tokens": 10, "messages": MESSAGES}
    response = http.post("/v1/messages", json=body, headers={"x-api-key": MASTER_KEY})
    assert response.status_code == 200, response.text
    # https://docs.anthropic.com/en/api/versioning: the upstream requires a version.
    assert_forwarded_as_anthropic(fake.last(), "/v1/messages", CLAUDE_UPSTREAM, "2023-06-01")
    assert "anthropic-beta" not in fake.last().headers


def test_glob_model_goes_upstream_under_its_own_name(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    message = claude.messages.create(model="claude-sonnet-9", max_tokens=10, messages=MESSAGES)
    assert message.content[0].text == TEXT
    assert_forwarded_as_anthropic(fake.last(), "/v1/messages", "claude-sonnet-9")


def test_messages_stream_helper(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.content[0].text == TEXT
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == COMPLETION_TOKENS
    received = fake.last()
    assert_forwarded_as_anthropic(received, "/v1/messages", CLAUDE_UPSTREAM)
    assert received.body["stream"] is True
    assert received.headers["accept"] == "text/event-stream"


def test_messages_create_stream_true(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = list(raw.parse())
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert "".join(deltas) == TEXT
    assert events[0].message.usage.input_tokens == PROMPT_TOKENS
    assert events[-2].usage.output_tokens == COMPLETION_TOKENS


async def test_async_messages(aclaude: anthropic.AsyncAnthropic, fake: FakeUpstream) -> None:
    message = await aclaude.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)
    assert message.content[0].text == TEXT
    async with aclaude.messages.stream(model=CLAUDE, max_tokens=10, messages=MESSAGES) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == TEXT
    assert final.usage.output_tokens == COMPLETION_TOKENS


def test_count_tokens_forwarded(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    raw = claude.messages.with_raw_response.count_tokens(model=CLAUDE, messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().input_tokens == COUNT_TOKENS
    received = fake.last()
    assert_forwarded_as_anthropic(received, COUNT_PATH, CLAUDE_UPSTREAM)
    assert received.body["messages"] == MESSAGES


def o200k_tokens(text: str) -> int:
    return len(bpe_openai.get_encoding("o200k_base").encode(text))


def test_count_tokens_for_openai_model_is_estimated_locally(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    short = "The quick brown fox jumps over the lazy dog."
    long = " ".join([short] * 40)
    short_count = claude.messages.count_tokens(
        model=GPT, messages=[{"role": "user", "content": short}]
    ).input_tokens
    long_count = claude.messages.count_tokens(
        model=GPT, messages=[{"role": "user", "content": long}], system="Be brief."
    ).input_tokens
    # A real tokenizer's count plus a little framing, not a character heuristic.
    assert o200k_tokens(short) <= short_count <= o200k_tokens(short) + 8
    floor = o200k_tokens(long) + o200k_tokens("Be brief.")
    assert floor <= long_count <= floor + 16
    assert fake.requests == []


def test_count_tokens_when_upstream_has_none(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.script(Fail(404, message="Not found"), path=COUNT_PATH)
    text = "Count these words, please, with a real tokenizer."
    result = claude.messages.count_tokens(
        model=CLAUDE, messages=[{"role": "user", "content": text}]
    )
    assert o200k_tokens(text) <= result.input_tokens <= o200k_tokens(text) + 8
    assert [r.path for r in fake.requests] == [COUNT_PATH]


def test_models_list_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    raw = claude.models.with_raw_response.list()
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.http_request.headers["anthropic-version"]
    page = raw.parse()
    ids = [model.id for model in page.data]
    assert CLAUDE in ids
    assert GPT in ids
    assert all(model.type == "model" for model in page.data)
    assert page.has_more is False
    assert page.first_id == ids[0]
    assert page.last_id == ids[-1]


def test_models_retrieve(claude: anthropic.Anthropic) -> None:
    model = claude.models.retrieve(CLAUDE)
    assert model.id == CLAUDE
    assert model.type == "model"
    assert model.display_name


def test_models_retrieve_unknown(claude: anthropic.Anthropic) -> None:
    try:
        claude.models.retrieve("no-such-model-0")  # matches no name and no glob
    except anthropic.NotFoundError as error:
        assert error.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    else:
        raise AssertionError("expected NotFoundError")


def test_beta_endpoints(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    # The SDK's beta namespace (used by Claude Code) posts to /v1/messages?beta=true.
    message = claude.beta.messages.create(
        model=CLAUDE, max_tokens=10, messages=MESSAGES, betas=["interleaved-thinking-2025-05-14"]
    )
    assert message.content[0].text == TEXT
    received = fake.last()
    assert_forwarded_as_anthropic(received, "/v1/messages", CLAUDE_UPSTREAM)
    assert received.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"

    with claude.beta.messages.stream(
        model=CLAUDE, max_tokens=10, messages=MESSAGES, betas=["context-1m-2025-08-07"]
    ) as stream:
        assert "".join(stream.text_stream) == TEXT
    assert fake.last().headers["anthropic-beta"] == "context-1m-2025-08-07"

    counted = claude.beta.messages.count_tokens(model=CLAUDE, messages=MESSAGES, betas=["x-1"])
    assert counted.input_tokens == COUNT_TOKENS
    assert fake.last().path == COUNT_PATH


def test_compressed_request_body_is_a_4xx(http: httpx.Client, fake: FakeUpstream) -> None:
    body = gzip.compress(orjson.dumps({"model": CLAUDE, "max_tokens": 5, "messages": MESSAGES}))
    headers = {"x-api-key": MASTER_KEY, "content-encoding": "gzip"}
    response = http.post("/v1/messages", content=body, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.json()["type"] == "error"
    assert fake.requests == []
