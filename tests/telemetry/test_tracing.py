"""OpenTelemetry traces from the real gateway, received by a real OTLP/HTTP endpoint.

Each test runs its own gateway with tracing pointed at the receiver, makes its calls and
stops the gateway: stopping flushes the exporter, so every span is in the receiver by
then (no sleeping).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from otlp_receiver import CLIENT, ERROR, SERVER, UNSET, OtlpReceiver, ReceivedSpan

from fake_upstream import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TEXT,
    Fail,
    FakeUpstream,
)
from harness import (
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    PROVIDER_KEYS,
    GatewayServer,
    gateway_settings,
    running_gateway,
)

PROMPT = "Tell me the secret word: pelican-4417."
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TIMEOUT = 10.0


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP endpoint for this test's spans."""
    server = OtlpReceiver().start()
    yield server
    server.stop()


def traced(fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver, **overrides: Any) -> Any:
    """A gateway in front of ``fake`` that sends its traces to ``receiver``."""
    telemetry = {"otlp_endpoint": receiver.url, "service_name": "tollway-test"}
    return running_gateway(gateway_settings(fake, tmp_path, telemetry=telemetry, **overrides))


def mint_key(gateway: GatewayServer) -> dict[str, Any]:
    """A virtual key (its id, project id and secret)."""
    response = httpx.post(
        gateway.url + "/api/v1/keys",
        json={"name": "traced", "ttl": "1h"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def calls(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The server spans, one per proxied call, in the order they ended."""
    return [span for span in spans if span.kind == SERVER]


def tries(spans: list[ReceivedSpan], call: ReceivedSpan) -> list[ReceivedSpan]:
    """The client spans under ``call``, in order."""
    children = [s for s in spans if s.parent_span_id == call.span_id]
    assert all(s.kind == CLIENT and s.trace_id == call.trace_id for s in children)
    return sorted(children, key=lambda s: s.attributes["tollway.attempt"])


def upstream_parent(traceparent: str) -> tuple[str, str]:
    """``(trace id, parent span id)`` of a sampled W3C traceparent header."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (0x02 may say "random ids")
    return trace_id, span_id


def test_a_call_is_a_server_span_under_the_clients_trace_with_a_client_span_per_try(
    fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with traced(fake, tmp_path, receiver) as gateway:
        key = mint_key(gateway)
        client = openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=key["key"], max_retries=0, timeout=TIMEOUT
        )
        raw = client.chat.completions.with_raw_response.create(
            model=GPT,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                "tracestate": "vendor=opaque",
            },
        )
        request_id = raw.headers["x-request-id"]
        upstream = fake.last("/v1/chat/completions")
    spans = receiver.spans
    [call] = calls(spans)
    assert call.name == f"chat {GPT}"
    assert (call.trace_id, call.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert call.resource["service.name"] == "tollway-test"
    assert call.scope == "tollway"
    assert call.status == UNSET
    attributes = call.attributes
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": GPT,
        "gen_ai.response.model": GPT_UPSTREAM,
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": COMPLETION_TOKENS,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.request.stream": False,
        "http.response.status_code": 200,
        "url.path": "/v1/chat/completions",
        "tollway.request_id": request_id,
        "tollway.key_id": key["id"],
        "tollway.project_id": key["project_id"],
        "tollway.provider": "oa",
        "tollway.cached": False,
        "tollway.attempts": 1,
        "tollway.unpriced": True,  # the fake's model is in no price list
    }
    assert {name: attributes.get(name) for name in expected} == expected
    assert "error.type" not in attributes

    [attempt] = tries(spans, call)
    assert attempt.name == f"chat {GPT_UPSTREAM}"
    assert attempt.status == UNSET
    assert attempt.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": GPT_UPSTREAM,
        "gen_ai.response.model": GPT_UPSTREAM,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": COMPLETION_TOKENS,
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        "tollway.deployment": f"oa/{GPT_UPSTREAM}",
        "tollway.attempt": 1,
    }
    # The upstream was called under the try's span, in the client's trace.
    assert upstream_parent(upstream.headers["traceparent"]) == (CLIENT_TRACE, attempt.span_id)
    assert upstream.headers["tracestate"] == "vendor=opaque"

    # No prompt, no completion, no key in anything exported.
    sent = b"".join(export.body for export in receiver.exports)
    for secret in (PROMPT, TEXT, key["key"], MASTER_KEY, *PROVIDER_KEYS):
        assert secret.encode() not in sent


def test_a_retried_call_has_a_failed_try_and_a_served_one(
    fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    retry = {"attempts": 1, "backoff_base": 0.0}
    with traced(fake, tmp_path, receiver, retry=retry) as gateway:
        fake.script(Fail(status=500))
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": GPT, "messages": [{"role": "user", "content": PROMPT}]},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        first, second = fake.requests
    spans = receiver.spans
    [call] = calls(spans)
    assert call.parent_span_id == ""  # no client trace: a new one
    assert call.status == UNSET and "error.type" not in call.attributes
    assert call.attributes["tollway.attempts"] == 2
    assert "tollway.key_id" not in call.attributes  # the master key has no id
    failed, served = tries(spans, call)
    assert failed.status == ERROR
    assert failed.attributes["error.type"] == "upstream_error"
    assert "http.response.status_code" not in failed.attributes
    assert "gen_ai.usage.input_tokens" not in failed.attributes
    assert served.status == UNSET and "error.type" not in served.attributes
    assert served.attributes["http.response.status_code"] == 200
    assert served.attributes["tollway.attempt"] == 2
    # Each try told the upstream its own span.
    assert upstream_parent(first.headers["traceparent"]) == (call.trace_id, failed.span_id)
    assert upstream_parent(second.headers["traceparent"]) == (call.trace_id, served.span_id)


def test_streamed_calls_are_traced_to_their_end(
    fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with traced(fake, tmp_path, receiver) as gateway:
        claude = anthropic.Anthropic(
            base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=TIMEOUT
        )
        with claude.messages.stream(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            assert stream.get_final_text() == TEXT
        upstream = fake.last("/v1/messages")
        oai = openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=TIMEOUT
        )
        chunks = oai.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    spans = receiver.spans
    messages, chat = calls(spans)
    assert messages.name == f"chat {CLAUDE}"
    expected = {
        "gen_ai.request.stream": True,
        "gen_ai.provider.name": "anthropic",
        "gen_ai.response.model": CLAUDE_UPSTREAM,
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": COMPLETION_TOKENS,
        "http.response.status_code": 200,
    }
    assert {name: messages.attributes.get(name) for name in expected} == expected
    assert messages.attributes["gen_ai.response.time_to_first_chunk"] > 0
    [attempt] = tries(spans, messages)
    assert attempt.attributes["gen_ai.usage.output_tokens"] == COMPLETION_TOKENS
    assert upstream_parent(upstream.headers["traceparent"]) == (
        messages.trace_id,
        attempt.span_id,
    )
    # The gateway asked the upstream for usage the client did not: still counted.
    assert chat.attributes["gen_ai.usage.output_tokens"] == COMPLETION_TOKENS
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat.attributes["gen_ai.response.model"] == GPT_UPSTREAM
    assert len(tries(spans, chat)) == 1


def test_failures_set_the_status_and_error_type(
    fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with traced(fake, tmp_path, receiver) as gateway:
        fake.script(Fail(status=500))
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        body = {"model": GPT, "messages": [{"role": "user", "content": PROMPT}]}
        failed = httpx.post(
            gateway.url + "/v1/chat/completions", json=body, headers=auth, timeout=TIMEOUT
        )
        assert failed.status_code == 502
        unknown = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={**body, "model": "no-such-model"},
            headers=auth,
            timeout=TIMEOUT,
        )
        assert unknown.status_code == 404
        refused = httpx.post(
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-tw-not-a-key-000000000000"},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 401
    spans = receiver.spans
    upstream_failure, not_found, unauthenticated = calls(spans)

    # The upstream failed: the call is a 502, an error of the server span and its try.
    assert upstream_failure.status == ERROR
    assert upstream_failure.attributes["error.type"] == "upstream_error"
    assert upstream_failure.attributes["http.response.status_code"] == 502
    [attempt] = tries(spans, upstream_failure)
    assert attempt.status == ERROR and attempt.attributes["error.type"] == "upstream_error"

    # A client's mistake is named, but is not the server span's failure (HTTP semantics).
    assert not_found.name == "chat no-such-model"
    assert not_found.status == UNSET
    assert not_found.attributes["error.type"] == failed_code(unknown)
    assert not_found.attributes["http.response.status_code"] == 404
    assert tries(spans, not_found) == []
    assert unauthenticated.name == "chat"  # the body was never read: no model
    assert unauthenticated.attributes["error.type"] == failed_code(refused)
    assert "tollway.key_id" not in unauthenticated.attributes


def failed_code(response: httpx.Response) -> str:
    """The error code in an OpenAI-shaped error answer."""
    code: str = response.json()["error"]["code"]
    return code


def test_a_cached_answer_has_no_try(
    fake: FakeUpstream, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with traced(fake, tmp_path, receiver, cache={"enabled": True}) as gateway:
        body = {
            "model": GPT,
            "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        for _ in range(2):
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {MASTER_KEY}"},
                timeout=TIMEOUT,
            )
            assert response.status_code == 200, response.text
        assert len(fake.requests) == 1
    spans = receiver.spans
    fresh, cached = calls(spans)
    assert fresh.attributes["tollway.cached"] is False and len(tries(spans, fresh)) == 1
    assert cached.attributes["tollway.cached"] is True and tries(spans, cached) == []
    assert cached.attributes["gen_ai.response.model"] == GPT_UPSTREAM
    assert cached.attributes["gen_ai.usage.output_tokens"] == COMPLETION_TOKENS
    assert "gen_ai.provider.name" not in cached.attributes
