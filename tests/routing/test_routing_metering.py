"""What retries, fallbacks and broken streams leave in the spend records: who served
the call, how many attempts it took, and the tokens a failed attempt cost when they
can be known."""

from __future__ import annotations

import orjson
import pytest
from routing_support import Gateway, StartGateway, Upstreams, model

from fake_upstream import PROMPT_TOKENS, CutMidStream, Fail, Respond

MODELS = [
    model("gpt-main", "oa-a", fallbacks=["claude-back"]),
    model("claude-main", "an-a", fallbacks=["gpt-back"]),
    model("gpt-back", "oa-b"),
    model("claude-back", "an-b"),
    model("solo", "oa-a"),
]


@pytest.fixture
def gw(start: StartGateway) -> Gateway:
    """A fresh gateway: the spend report covers this test's calls only."""
    return start(MODELS, retry={"attempts": 1})


def test_spend_names_the_provider_that_served_the_fallback(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(503), persistent=True)
    ids = [gw.chat("gpt-main").headers["x-request-id"] for _ in range(2)]
    ids.append(gw.messages("claude-main").headers["x-request-id"])
    rows = [gw.row(request_id) for request_id in ids]
    assert [(r["model"], r["provider"], r["upstream_model"]) for r in rows] == [
        ("gpt-main", "an-b", "claude-back-up"),
        ("gpt-main", "an-b", "claude-back-up"),
        ("claude-main", "oa-b", "gpt-back-up"),
    ]
    assert all(r["attempts"] == 3 and r["status"] == 200 for r in rows)
    report = gw.spend(group_by="provider")
    by_provider = {group["group"]: group["requests"] for group in report["groups"]}
    assert by_provider == {"an-b": 2, "oa-b": 1}
    by_model = {g["group"]: g["requests"] for g in gw.spend(group_by="model")["groups"]}
    assert by_model == {"gpt-main": 2, "claude-main": 1}


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_stream_cut_mid_way_is_metered_for_what_was_generated(
    gw: Gateway, ups: Upstreams, dialect: str
) -> None:
    if dialect == "anthropic":
        # message_start (input and first output tokens reported), block start, ping, delta
        ups.a.script(CutMidStream(after_events=4))
        response = gw.messages("claude-main", stream=True)
    else:
        # role chunk and two text chunks; OpenAI reports usage only at the very end
        ups.a.script(CutMidStream(after_events=3))
        response = gw.chat("gpt-main", stream=True)
    assert response.status_code == 200
    row = gw.row(response.headers["x-request-id"])
    assert row["error"] == "upstream_error"
    assert row["attempts"] == 1
    assert row["provider"] == ("an-a" if dialect == "anthropic" else "oa-a")
    assert row["output_tokens"] >= 1
    if dialect == "anthropic":
        assert row["input_tokens"] == PROMPT_TOKENS  # the upstream's own count
    else:
        assert row["input_tokens"] > 0  # estimated from the prompt
        assert row["estimated"]
    assert row["priced"] and float(row["cost_usd"]) > 0
    assert ups.b.requests == []  # nothing was retried or sent to the fallback
    assert gw.spend()["totals"]["requests"] == 1


def test_body_cut_before_usage_is_retried_and_cannot_be_metered(
    gw: Gateway, ups: Upstreams
) -> None:
    # A non-streamed answer cut in half: the upstream may have billed it, but its usage
    # never reached the gateway. Only the attempt that answered is metered.
    ups.a.script(CutMidStream())
    response = gw.chat("solo")
    assert response.status_code == 200
    row = gw.row(response.headers["x-request-id"])
    assert row["attempts"] == 2
    assert (row["input_tokens"], row["estimated"]) == (PROMPT_TOKENS, 0)


def test_usage_of_a_failed_attempt_is_metered(gw: Gateway, ups: Upstreams) -> None:
    broken = {
        "id": "msg_broken",
        "type": "message",
        "role": "assistant",
        "model": "claude-main-up",
        "content": 5,  # not a list: the translation to chat.completion fails
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "output_tokens": 500},
    }
    ups.a.script(Respond(200, orjson.dumps(broken)))
    response = gw.chat("claude-main")
    assert response.status_code == 200, response.text
    assert len(ups.a.requests) == 2  # the broken answer was retried
    totals = gw.spend()["totals"]
    assert totals["input_tokens"] >= 1000 + PROMPT_TOKENS
    assert totals["output_tokens"] >= 500


def test_attempts_of_a_failed_call_are_counted_exactly(gw: Gateway, ups: Upstreams) -> None:
    ups.a.script(Fail(500), persistent=True)
    response = gw.chat("solo")
    assert response.status_code == 502
    assert len(ups.a.requests) == 2
    assert gw.row(response.headers["x-request-id"])["attempts"] == 2
