"""The official OpenAI SDK against the real gateway, for every OpenAI endpoint."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest

from checks import assert_no_leak
from fake_upstream import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT,
    FakeUpstream,
    Received,
    Reply,
    embedding_vector,
)
from harness import (
    CLAUDE,
    EMBED,
    EMBED_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
)

MESSAGES = [{"role": "user", "content": "Say hello."}]
UNICODE = 'h\u00e9llo \U0001f44b \u65e5\u672c "quoted" \\ back\nslash \u2028'


def assert_forwarded_as_openai(received: Received, path: str, upstream_model: str) -> None:
    """The upstream got our provider key, the upstream model id, and nothing of the client's."""
    assert received.method == "POST"
    assert received.path == path
    assert received.body["model"] == upstream_model
    assert received.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
    assert received.headers["content-type"] == "application/json"
    assert "x-api-key" not in received.headers
    for name, value in received.headers.items():
        assert MASTER_KEY not in value, name
        assert not name.startswith("x-stainless"), name


def test_chat_completion(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model=GPT, messages=MESSAGES, temperature=0.2, max_tokens=50
    )
    assert raw.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert completion.model == GPT_UPSTREAM

    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/chat/completions", GPT_UPSTREAM)
    # Everything but the model name reaches the upstream as the client sent it.
    assert received.body["messages"] == MESSAGES
    assert received.body["temperature"] == 0.2
    assert received.body["max_tokens"] == 50


def test_rewritten_body_keeps_every_other_field(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    # The model name is replaced, so the body is re-serialised: nothing else may change.
    messages = [
        {"role": "system", "content": UNICODE},
        {"role": "user", "content": [{"type": "text", "text": UNICODE}]},
    ]
    extra = {
        "seed": 9007199254740993,
        "logit_bias": {"1234": -100},
        "metadata": {"nested": {"list": [1, 2.5, None, True, "x"]}},
        "unknown_future_field": {"keep": "me"},
    }
    oai.chat.completions.create(
        model=GPT, messages=messages, temperature=0.7, top_p=0.125, extra_body=extra
    )
    body = fake.last().body
    assert body["model"] == GPT_UPSTREAM
    assert body["messages"] == messages
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.125
    for name, value in extra.items():
        assert body[name] == value, name


async def test_concurrent_calls(aoai: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    async def plain() -> str | None:
        completion = await aoai.chat.completions.create(model=GPT, messages=MESSAGES)
        return completion.choices[0].message.content

    async def streamed() -> str:
        stream = await aoai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    results = await asyncio.gather(*(plain() if i % 2 else streamed() for i in range(40)))
    assert results == [TEXT] * 40
    assert len(fake.requests) == 40


def test_request_ids_are_unique(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    ids = {
        oai.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES).headers[
            "x-request-id"
        ]
        for _ in range(3)
    }
    assert len(ids) == 3


def test_chat_stream_with_usage(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    stream = oai.chat.completions.create(
        model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS

    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/chat/completions", GPT_UPSTREAM)
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}
    assert received.headers["accept"] == "text/event-stream"


def test_chat_stream_without_usage_gets_no_usage_chunk(
    oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, stream=True)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT


def test_completions(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = oai.completions.with_raw_response.create(model=GPT, prompt="Say hello.", max_tokens=20)
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].text == TEXT
    assert completion.usage is not None
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/completions", GPT_UPSTREAM)
    assert received.body["prompt"] == "Say hello."


def test_completions_stream(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(
        oai.completions.create(
            model=GPT, prompt="Say hello.", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == TEXT
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert_forwarded_as_openai(fake.last(), "/v1/completions", GPT_UPSTREAM)


def test_embeddings_base64_default(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    # The SDK asks for base64 by default and decodes it back into floats.
    raw = oai.embeddings.with_raw_response.create(model=EMBED, input=["one", "two"])
    assert raw.headers["x-request-id"].startswith("req_")
    result = raw.parse()
    assert [item.embedding for item in result.data] == [embedding_vector(0), embedding_vector(1)]
    assert result.usage.prompt_tokens == PROMPT_TOKENS
    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/embeddings", EMBED_UPSTREAM)
    assert received.body["encoding_format"] == "base64"
    assert received.body["input"] == ["one", "two"]


def test_embeddings_float(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    result = oai.embeddings.create(model=EMBED, input="one", encoding_format="float")
    assert result.data[0].embedding == embedding_vector(0)
    assert fake.last().body["encoding_format"] == "float"


def test_responses(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = oai.responses.with_raw_response.create(model=GPT, input="Say hello.")
    assert raw.headers["x-request-id"].startswith("req_")
    response = raw.parse()
    assert response.output_text == TEXT
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens == PROMPT_TOKENS
    assert response.usage.output_tokens == COMPLETION_TOKENS
    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/responses", GPT_UPSTREAM)
    assert received.body["input"] == "Say hello."


def test_responses_stream_events(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    events = list(oai.responses.create(model=GPT, input="Say hello.", stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == TEXT
    completed = events[-1].response
    assert completed.usage is not None
    assert completed.usage.output_tokens == COMPLETION_TOKENS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert_forwarded_as_openai(fake.last(), "/v1/responses", GPT_UPSTREAM)


def test_responses_stream_helper(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    with oai.responses.stream(model=GPT, input="Say hello.") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == TEXT
    assert final.output_text == TEXT


def test_models_list(oai: openai.OpenAI) -> None:
    raw = oai.models.with_raw_response.list()
    assert raw.headers["x-request-id"].startswith("req_")
    models = {model.id: model for model in raw.parse()}
    assert {GPT, EMBED, CLAUDE} <= set(models)
    # Glob entries route requests; they are not models a client can pick from a list.
    assert not any("*" in name for name in models)
    assert models[GPT].owned_by == "oa"
    assert models[GPT].object == "model"


def test_models_retrieve(oai: openai.OpenAI) -> None:
    model = oai.models.retrieve(GPT)
    assert model.id == GPT
    assert model.owned_by == "oa"


def test_models_retrieve_unknown(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("no-such-model")
    assert "no-such-model" in caught.value.message


def test_upstream_gzip_body_reaches_client_decoded(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(Reply(gzip=True))
    completion = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert completion.choices[0].message.content == TEXT


def test_client_headers_are_not_forwarded(
    http: httpx.Client, fake: FakeUpstream, auth: dict[str, str]
) -> None:
    client_headers = {
        **auth,
        "connection": "keep-alive, x-hop-secret",
        "x-hop-secret": "hop",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic dXNlcjpwYXNz",
        "te": "trailers",
        "cookie": "session=abc",
        "x-forwarded-for": "10.1.2.3",
        "openai-organization": "org-client",
        "x-api-key": "client-second-key",
    }
    body = {"model": GPT, "messages": MESSAGES}
    response = http.post("/v1/chat/completions", json=body, headers=client_headers)
    assert response.status_code == 200, response.text
    received = fake.last()
    assert_forwarded_as_openai(received, "/v1/chat/completions", GPT_UPSTREAM)
    for name in (
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "cookie",
        "x-forwarded-for",
        "openai-organization",
        "x-api-key",
    ):
        assert name not in received.headers, name
    assert "x-hop-secret" not in received.headers.get("connection", "")


def test_unmapped_body_is_forwarded_as_parsed(
    http: httpx.Client, fake: FakeUpstream, auth: dict[str, str]
) -> None:
    # A glob-served model needs no rewrite: the same JSON goes upstream (serialized again,
    # so what was checked is exactly what is forwarded).
    body = (
        b'{"model": "claude-any-1", "max_tokens": 5,\n "messages": [{"role":"user","content":"x"}]}'
    )
    headers = {**auth, "content-type": "application/json"}
    response = http.post("/v1/messages", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert orjson.loads(fake.last().raw) == orjson.loads(body)


def test_duplicate_keys_forward_what_was_authorized(
    http: httpx.Client, fake: FakeUpstream, auth: dict[str, str]
) -> None:
    # A parser that keeps the first "model" upstream must not run a model other than
    # the one the gateway routed and authorized (the last one, as the gateway reads it).
    body = b'{"model": "not-configured", "model": "claude-any-2", "max_tokens": 5,'
    body += b' "messages": [{"role": "user", "content": "x"}]}'
    headers = {**auth, "content-type": "application/json"}
    response = http.post("/v1/messages", content=body, headers=headers)
    assert response.status_code == 200, response.text
    raw = fake.last().raw
    assert raw.count(b'"model"') == 1
    assert orjson.loads(raw)["model"] == "claude-any-2"


async def test_async_chat_and_stream(aoai: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    completion = await aoai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert completion.choices[0].message.content == TEXT
    stream = await aoai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == TEXT
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 2


async def test_async_responses_stream(aoai: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    stream = await aoai.responses.create(model=GPT, input="hi", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"


def test_no_secret_in_success_bodies(
    http: httpx.Client, fake: FakeUpstream, auth: dict[str, str]
) -> None:
    response = http.post(
        "/v1/chat/completions", json={"model": GPT, "messages": MESSAGES}, headers=auth
    )
    assert response.status_code == 200
    assert_no_leak(response.text)
