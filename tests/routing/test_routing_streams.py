"""No retry and no fallback once a stream has sent a byte; a stream that fails before
its first event is retried (or falls back) without the client noticing."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from routing_support import (
    AUTH,
    MESSAGES,
    Gateway,
    StartGateway,
    Upstreams,
    anthropic_error_event,
    event_payload,
    model,
    openai_error_event,
    requests_to,
    sse_events,
)

from checks import assert_no_leak
from fake_upstream import (
    PIECES,
    TEXT,
    Behaviour,
    CutMidStream,
    Fail,
    Reset,
    Respond,
    Stall,
    StallMidStream,
    Truncate,
    anthropic_events,
    chat_events,
)

CHAT = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
MODELS = [
    model("gpt-main", "oa-a", fallbacks=["gpt-back"]),
    model("claude-main", "an-a", fallbacks=["claude-back"]),
    model("gpt-back", "oa-b"),
    model("claude-back", "an-b"),
]
# client dialect, model -> (primary path, whether the gateway translates)
COMBOS = {
    "openai->gpt": ("openai", "gpt-main", CHAT),
    "openai->claude": ("openai", "claude-main", MESSAGES_PATH),
    "anthropic->claude": ("anthropic", "claude-main", MESSAGES_PATH),
    "anthropic->gpt": ("anthropic", "gpt-main", CHAT),
}
TIMEOUTS = {"stream_idle": 0.3, "read": 0.3}


@pytest.fixture(scope="module")
def gw(start_shared: StartGateway) -> Gateway:
    """Retries on: a failure before the first event is retried on the same model."""
    return start_shared(MODELS, retry={"attempts": 2}, timeouts=TIMEOUTS)


@pytest.fixture(scope="module")
def gw_no_retry(start_shared: StartGateway) -> Gateway:
    """Retries off: a failure before the first event goes straight to the fallback."""
    return start_shared(MODELS, retry={"attempts": 0}, timeouts=TIMEOUTS)


def _stream_raw(gw: Gateway, dialect: str, name: str) -> tuple[int, bytes, str]:
    path = CHAT if dialect == "openai" else MESSAGES_PATH
    body: dict[str, Any] = {"model": name, "messages": MESSAGES, "stream": True}
    if dialect == "anthropic":
        body["max_tokens"] = 50
    with gw.http() as client, client.stream("POST", path, json=body, headers=AUTH) as response:
        raw = response.read()
        return response.status_code, raw, response.headers.get("x-request-id", "")


def _client_text(dialect: str, events: list[bytes]) -> str:
    text = ""
    for event in events:
        payload = event_payload(event)
        if not isinstance(payload, dict):
            continue
        if dialect == "openai":
            for choice in payload.get("choices") or []:
                text += choice.get("delta", {}).get("content") or ""
        elif payload.get("type") == "content_block_delta":
            text += payload["delta"].get("text", "")
    return text


def _assert_error_event(dialect: str, event: bytes) -> dict[str, Any]:
    assert_no_leak(event)
    payload = event_payload(event)
    if dialect == "openai":
        assert event.startswith(b"data: ")
        assert set(payload) == {"error"}
        assert payload["error"]["type"] == "server_error"
    else:
        assert event.startswith(b"event: error\n")
        assert payload["type"] == "error"
        assert set(payload["error"]) >= {"type", "message"}
    return dict(payload["error"])


# ------------------------------------------------------------------ after the first byte


@pytest.mark.parametrize("combo", list(COMBOS))
def test_stream_cut_mid_way_is_not_retried_nor_falls_back(
    gw: Gateway, ups: Upstreams, combo: str
) -> None:
    dialect, name, _ = COMBOS[combo]
    ups.a.script(CutMidStream(after_events=2))
    status, raw, request_id = _stream_raw(gw, dialect, name)
    assert status == 200
    events = sse_events(raw)
    _assert_error_event(dialect, events[-1])
    before = events[:-1]
    assert all(event_payload(e) is not None for e in before)
    assert not any(b"error" in e[:20] for e in before)
    if combo == "openai->gpt":
        # Passed through as sent: the role chunk and the first text piece.
        assert len(before) == 2
        assert [json.loads(e[6:])["choices"][0]["delta"] for e in before][1] == {
            "content": PIECES[0]
        }
    if combo == "anthropic->claude":
        assert [event_payload(e)["type"] for e in before] == [
            "message_start",
            "content_block_start",
        ]
    assert requests_to(ups.a) == 1
    assert requests_to(ups.b) == 0
    row = gw.row(request_id)
    assert row["attempts"] == 1
    assert row["error"] == "upstream_error"


def test_openai_sdk_raises_after_the_events_it_got(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(CutMidStream(after_events=3))
    got: list[str] = []
    with gw.openai() as client, pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="gpt-main", messages=MESSAGES, stream=True
        ):
            got.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(got) == "".join(PIECES[:2])
    assert requests_to(ups.b) == 0


def test_anthropic_sdk_raises_after_the_events_it_got(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(CutMidStream(after_events=5))  # start, block start, ping, 2 deltas
    got: list[str] = []
    with (
        gw.anthropic() as client,
        pytest.raises(anthropic.APIError),
        client.messages.stream(model="claude-main", max_tokens=50, messages=MESSAGES) as stream,
    ):
        got.extend(stream.text_stream)
    assert "".join(got) == "".join(PIECES[:2])
    assert requests_to(ups.b) == 0


MID_STREAM: dict[str, tuple[Behaviour, str]] = {
    "truncated": (Truncate(after_events=3), "upstream_error"),
    "stalled": (StallMidStream(after_events=3, seconds=5), "upstream_timeout"),
}


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("case", list(MID_STREAM))
def test_stream_failing_after_events_is_final(
    gw: Gateway, ups: Upstreams, dialect: str, case: str
) -> None:
    behaviour, code = MID_STREAM[case]
    ups.a.script(behaviour)
    name = "gpt-main" if dialect == "openai" else "claude-main"
    status, raw, request_id = _stream_raw(gw, dialect, name)
    assert status == 200
    events = sse_events(raw)
    _assert_error_event(dialect, events[-1])
    assert requests_to(ups.a) == 1
    assert requests_to(ups.b) == 0
    assert gw.row(request_id)["error"] == code


def test_upstream_error_event_after_the_first_event_is_final(gw: Gateway, ups: Upstreams) -> None:
    events = anthropic_events("claude-main-up", PIECES)
    body = b"".join(events[:4]) + anthropic_error_event("overloaded_error", "Overloaded")
    ups.a.script(Respond(200, body, "text/event-stream"), path=MESSAGES_PATH)
    status, raw, _ = _stream_raw(gw, "anthropic", "claude-main")
    got = sse_events(raw)
    assert status == 200
    error = _assert_error_event("anthropic", got[-1])
    assert error["type"] == "overloaded_error"
    assert _client_text("anthropic", got) == PIECES[0]
    assert requests_to(ups.a) == 1
    assert requests_to(ups.b) == 0


# ------------------------------------------------------------------ before the first byte


def _first_event_error(path: str) -> Respond:
    if path == CHAT:
        return Respond(200, openai_error_event(), "text/event-stream")
    return Respond(200, anthropic_error_event(), "text/event-stream")


BEFORE_FIRST_EVENT: dict[str, Any] = {
    "reset": lambda path: Reset(),
    "500": lambda path: Fail(500),
    "529": lambda path: Fail(529, message="Overloaded"),
    "429": lambda path: Fail(429),
    "first-event-is-error": _first_event_error,
    "closed-before-first-event": lambda path: CutMidStream(after_events=0),
    "ended-before-first-event": lambda path: Truncate(after_events=0),
    "silent-before-first-event": lambda path: StallMidStream(after_events=0, seconds=5),
    "no-headers": lambda path: Stall(5),
}


def _complete_stream(dialect: str, raw: bytes) -> None:
    events = sse_events(raw)
    assert_no_leak(raw)
    assert _client_text(dialect, events) == TEXT
    assert not any(b'"error"' in event for event in events)
    if dialect == "openai":
        assert events[-1] == b"data: [DONE]\n\n"
    else:
        assert event_payload(events[-1])["type"] == "message_stop"


NATIVE = ["openai->gpt", "anthropic->claude"]
TRANSLATED = ["openai->claude", "anthropic->gpt"]
RETRIED_CASES = [
    *((combo, case) for combo in NATIVE for case in BEFORE_FIRST_EVENT),
    *(
        (combo, case)
        for combo in TRANSLATED
        for case in ("500", "first-event-is-error", "closed-before-first-event")
    ),
]


@pytest.mark.parametrize(("combo", "case"), RETRIED_CASES)
def test_stream_failing_before_its_first_event_is_retried(
    gw: Gateway, ups: Upstreams, combo: str, case: str
) -> None:
    dialect, name, path = COMBOS[combo]
    ups.a.script(BEFORE_FIRST_EVENT[case](path))
    status, raw, request_id = _stream_raw(gw, dialect, name)
    assert status == 200
    _complete_stream(dialect, raw)
    assert requests_to(ups.a, path) == 2
    assert requests_to(ups.b) == 0
    row = gw.row(request_id)
    assert (row["attempts"], row["error"], row["status"]) == (2, None, 200)


@pytest.mark.parametrize("combo", NATIVE)
@pytest.mark.parametrize(
    "case", ["reset", "500", "first-event-is-error", "silent-before-first-event"]
)
def test_stream_failing_before_its_first_event_falls_back(
    gw_no_retry: Gateway, ups: Upstreams, combo: str, case: str
) -> None:
    dialect, name, path = COMBOS[combo]
    ups.a.script(BEFORE_FIRST_EVENT[case](path))
    status, raw, request_id = _stream_raw(gw_no_retry, dialect, name)
    assert status == 200
    _complete_stream(dialect, raw)
    assert requests_to(ups.a) == 1
    assert requests_to(ups.b, path) == 1
    row = gw_no_retry.row(request_id)
    assert row["provider"] == ("oa-b" if dialect == "openai" else "an-b")


def test_openai_stream_passes_through_unchanged_after_a_retry(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Reset())
    status, raw, _ = _stream_raw(gw, "openai", "gpt-main")
    assert status == 200
    # The client did not ask for usage: exactly the events of a plain stream.
    expected = chat_events("gpt-main-up", {}, PIECES)
    got = sse_events(raw)
    assert len(got) == len(expected)
    assert [event_payload(e) for e in got] == [event_payload(e) for e in expected]
