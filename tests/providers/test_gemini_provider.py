"""The Gemini provider: URLs, the key header, usage, streams and errors, against a fake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from provider_support import FakeUpstream, Reply, build, call, fixture_bytes, split

from tollway.dialects.endpoints import Endpoint
from tollway.errors import UpstreamError, UpstreamRejected, UpstreamUnavailable
from tollway.providers.base import Provider
from tollway.providers.gemini import GeminiProvider, GeminiStreamMeter

KEY = "AIzaSyD-test-0123456789abcdefghijklmnop"
BASE = "https://generativelanguage.googleapis.com/v1beta"
BODY = {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}]}


def gemini(**config: Any) -> GeminiProvider:
    provider = build("gemini", api_key=KEY, **config)
    assert isinstance(provider, GeminiProvider)
    return provider


def test_urls_carry_the_model_but_never_the_key() -> None:
    provider = gemini()
    whole = call(Endpoint.GENERATE_CONTENT, BODY, model="gemini-2.5-flash")
    streamed = call(Endpoint.GENERATE_CONTENT, BODY, model="models/gemini-2.5-flash", stream=True)
    assert provider.url(whole) == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert provider.url(streamed) == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    for request in (whole, streamed):
        assert KEY not in provider.url(request)
        assert "key=" not in provider.url(request)


def test_tuned_models_and_odd_ids_are_escaped() -> None:
    provider = gemini()
    tuned = call(Endpoint.GENERATE_CONTENT, model="tunedModels/my-model-42")
    assert provider.url(tuned) == f"{BASE}/tunedModels/my-model-42:generateContent"
    odd = call(Endpoint.GENERATE_CONTENT, model="a/b?c")
    assert provider.url(odd) == f"{BASE}/models/a%2Fb%3Fc:generateContent"


def test_key_travels_in_the_x_goog_api_key_header() -> None:
    provider = gemini()
    assert provider.headers(call(Endpoint.GENERATE_CONTENT, stream=True)) == {
        "content-type": "application/json",
        "x-goog-api-key": KEY,
        "accept": "text/event-stream",
    }
    project = provider.headers(call(Endpoint.GENERATE_CONTENT, credential="AIzaProjectKey"))
    assert project["x-goog-api-key"] == "AIzaProjectKey"


def test_serves_generate_content_only() -> None:
    provider = gemini()
    assert provider.endpoints == frozenset({Endpoint.GENERATE_CONTENT})
    assert not provider.supports(Endpoint.CHAT_COMPLETIONS)
    assert provider.price_provider_id == "google"
    assert gemini(base_url="https://proxy.example.com/v1beta").price_api_url is None


def test_usage_counts_cached_thinking_and_tool_prompt_tokens() -> None:
    usage = gemini().usage_from_body(fixture_bytes("gemini/generate_content.json"))
    assert usage is not None
    assert usage.input_tokens == 120  # promptTokenCount already includes the 100 cached
    assert usage.cache_read_tokens == 100
    assert usage.output_tokens == 8 + 50  # candidates + thoughts
    assert usage.reasoning_tokens == 50
    tool_prompt = {"usageMetadata": {"promptTokenCount": 10, "toolUsePromptTokenCount": 5}}
    usage = gemini().usage_from_body(orjson.dumps(tool_prompt))
    assert usage is not None
    assert usage.input_tokens == 15
    assert gemini().usage_from_body(b"not json") is None


async def test_send_posts_to_generate_content_with_the_header_key(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    upstream.script(Reply(body=fixture_bytes("gemini/generate_content.json")))
    provider = provider_factory("gemini", api_key=KEY, base_url=upstream.url + "/v1beta")
    response = await provider.send(call(Endpoint.GENERATE_CONTENT, BODY, model="gemini-2.5-flash"))
    assert response.status == 200
    assert orjson.loads(await response.read())["responseId"] == "mB1vaMXfBPGgz7IPx5qM4QI"
    (seen,) = upstream.seen
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert KEY not in seen.path
    assert seen.json() == BODY


@pytest.mark.parametrize("piece", [None, 1, 7, 64])
async def test_stream_events_and_meter(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider], piece: int | None
) -> None:
    recorded = fixture_bytes("gemini/stream_text.sse")
    chunks = [recorded] if piece is None else split(recorded, piece)
    upstream.script(Reply(chunks=chunks, content_type="text/event-stream"))
    provider = provider_factory("gemini", api_key=KEY, base_url=upstream.url + "/v1beta")
    request = call(Endpoint.GENERATE_CONTENT, BODY, model="gemini-2.0-flash", stream=True)
    response = await provider.send(request)
    assert response.content_type in provider.stream_content_types
    meter = provider.stream_meter(Endpoint.GENERATE_CONTENT, strip_usage=False)
    events = []
    async for event in provider.stream_events(response):
        assert meter.observe(event) == event
        events.append(event)
    assert upstream.seen[0].path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert len(events) == 3
    assert meter.finished
    assert meter.usage is not None
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (12, 7)
    assert "The capital of France is Paris." in meter.generated_text()


def test_meter_is_not_finished_before_a_finish_reason() -> None:
    meter = GeminiStreamMeter(Endpoint.GENERATE_CONTENT, strip_usage=False)
    first = fixture_bytes("gemini/stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    meter.observe(first)
    assert not meter.finished
    assert meter.usage is not None
    assert meter.usage.input_tokens == 12
    blocked = b"data: " + fixture_bytes("gemini/blocked_prompt.json").replace(b"\n", b"") + b"\n\n"
    meter.observe(blocked)
    assert meter.finished


async def test_an_error_inside_the_stream_ends_it(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    first = fixture_bytes("gemini/stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    chunks = [first, b"data: " + orjson.dumps(error) + b"\r\n\r\n"]
    upstream.script(Reply(chunks=chunks, content_type="text/event-stream"))
    provider = provider_factory("gemini", api_key=KEY, base_url=upstream.url)
    response = await provider.send(call(Endpoint.GENERATE_CONTENT, BODY, stream=True))
    seen = []
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        async for event in provider.stream_events(response):
            seen.append(event)
    assert len(seen) == 1


async def test_a_truncated_stream_is_an_error(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    recorded = fixture_bytes("gemini/stream_text.sse")
    upstream.script(Reply(chunks=[recorded[:-40]], content_type="text/event-stream"))
    provider = provider_factory("gemini", api_key=KEY, base_url=upstream.url)
    response = await provider.send(call(Endpoint.GENERATE_CONTENT, BODY, stream=True))
    with pytest.raises(UpstreamError, match="middle of an event"):
        async for _ in provider.stream_events(response):
            pass


def test_invalid_key_is_treated_as_rejected_credentials() -> None:
    error = gemini().error_for(400, fixture_bytes("gemini/error_invalid_key.json"), None)
    assert type(error) is UpstreamError
    assert error.message == "Provider 'up' rejected the gateway's credentials."


def test_quota_error_becomes_rate_limited_with_retry_after() -> None:
    error = gemini().error_for(429, fixture_bytes("gemini/error_quota.json"), None)
    assert isinstance(error, UpstreamUnavailable)
    assert error.code == "upstream_rate_limited"
    assert error.headers == {"retry-after": "37"}
    assert "exceeded your current quota" in error.message
    given = gemini().error_for(429, fixture_bytes("gemini/error_quota.json"), "5")
    assert given.headers == {"retry-after": "5"}


def test_bad_request_message_reaches_the_client() -> None:
    error = gemini().error_for(400, fixture_bytes("gemini/error_bad_request.json"), None)
    assert isinstance(error, UpstreamRejected)
    assert error.status == 400
    assert "contents.parts must not be empty" in error.message


def test_list_wrapped_stream_errors_are_read() -> None:
    error = gemini().error_for(503, fixture_bytes("gemini/error_stream_wrapped.json"), None)
    assert isinstance(error, UpstreamUnavailable)
    assert "overloaded" in error.message


def test_keys_in_error_messages_are_redacted() -> None:
    leaked = {
        "error": {
            "code": 400,
            "message": f"Bad request for key {KEY} and AIzaOther0123456789abcdefXYZ",
            "status": "INVALID_ARGUMENT",
        }
    }
    error = gemini().error_for(400, orjson.dumps(leaked), None)
    assert KEY not in error.message
    assert "AIzaOther" not in error.message
    assert error.message.count("[redacted]") == 2
