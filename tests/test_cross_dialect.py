"""A client of one dialect calling a model of the other provider: answers, errors and
stream failures all come back in the dialect the client spoke, with nothing leaked."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from checks import anthropic_error, assert_no_leak, openai_error, sse_events
from fake_upstream import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT,
    CutMidStream,
    Fail,
    FakeUpstream,
    SlowEvents,
    StallMidStream,
)
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "Say hello."}]
OPENAI_CALL = {"model": CLAUDE, "messages": MESSAGES, "max_tokens": 50}
ANTHROPIC_CALL = {"model": GPT, "max_tokens": 50, "messages": MESSAGES}


def test_openai_client_claude_model(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=CLAUDE, messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    received = fake.last()
    assert received.path == "/v1/messages"
    assert received.body["model"] == CLAUDE_UPSTREAM
    assert received.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
    assert "authorization" not in received.headers


def test_anthropic_client_gpt_model(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with claude.messages.stream(model=GPT, max_tokens=50, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
    assert final.usage.output_tokens == COMPLETION_TOKENS
    received = fake.last()
    assert received.path == "/v1/chat/completions"
    assert received.body["model"] == GPT_UPSTREAM
    assert received.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"
    assert "x-api-key" not in received.headers


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (Fail(400, message=f"messages.0: bad block ({ANTHROPIC_UPSTREAM_KEY})"), 400),
        (Fail(401, message="invalid x-api-key"), 502),
        (Fail(429, headers={"retry-after": "3"}), 503),
        (Fail(529, message="Overloaded"), 503),
        (Fail(500), 502),
    ],
    ids=["400", "401", "429", "529", "500"],
)
def test_anthropic_upstream_errors_reach_openai_client_in_openai_shape(
    http: httpx.Client, fake: FakeUpstream, behaviour: Fail, status: int
) -> None:
    fake.script(behaviour)
    response = http.post("/v1/chat/completions", json=OPENAI_CALL, headers=AUTH)
    error = openai_error(response, status)
    if status == 400:
        assert "bad block" in error["message"]
    if status == 503 and behaviour.headers:
        assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("behaviour", "status", "kind"),
    [
        (Fail(400, message=f"bad request for {OPENAI_UPSTREAM_KEY}"), 400, None),
        (Fail(401, message=f"Incorrect API key provided: {OPENAI_UPSTREAM_KEY}"), 502, None),
        (Fail(503), 503, "overloaded_error"),
        (Fail(504), 504, "timeout_error"),
    ],
    ids=["400", "401", "503", "504"],
)
def test_openai_upstream_errors_reach_anthropic_client_in_anthropic_shape(
    http: httpx.Client, fake: FakeUpstream, behaviour: Fail, status: int, kind: str | None
) -> None:
    fake.script(behaviour)
    response = http.post("/v1/messages", json=ANTHROPIC_CALL, headers=AUTH)
    error = anthropic_error(response, status)
    if kind is not None:
        assert error["type"] == kind


def test_translated_stream_cut_is_an_openai_error_event(
    http: httpx.Client, oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(CutMidStream(after_events=4))
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(model=CLAUDE, messages=MESSAGES, stream=True):
            pass

    fake.script(CutMidStream(after_events=4))
    with http.stream(
        "POST", "/v1/chat/completions", json={**OPENAI_CALL, "stream": True}, headers=AUTH
    ) as response:
        raw = response.read()
    events = sse_events(raw)
    assert_no_leak(raw)
    assert not any(event.startswith(b"event:") for event in events)
    last = json.loads(events[-1].removeprefix(b"data: "))
    assert set(last) == {"error"}
    assert last["error"]["type"] == "server_error"


def test_translated_stream_stall_is_an_anthropic_error_event(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.script(StallMidStream(after_events=3, seconds=30))
    started = time.monotonic()
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(model=GPT, max_tokens=50, messages=MESSAGES) as stream,
    ):
        for _ in stream:
            pass
    assert time.monotonic() - started < 5
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "timeout_error"  # type: ignore[index]


def test_leaving_a_translated_stream_drops_upstream(http: httpx.Client, fake: FakeUpstream) -> None:
    fake.script(SlowEvents(0.05, pieces=100))
    with http.stream(
        "POST", "/v1/chat/completions", json={**OPENAI_CALL, "stream": True}, headers=AUTH
    ) as response:
        for _ in response.iter_raw():
            break
    closed_at = time.monotonic()
    assert fake.wait_for(lambda: fake.last().dropped_at is not None, timeout=5)
    dropped_at = fake.last().dropped_at
    assert dropped_at is not None and dropped_at - closed_at < 1.5
    assert not fake.last().completed
