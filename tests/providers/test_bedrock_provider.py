"""The Bedrock provider: URLs, SigV4 signing, the event stream, usage and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from provider_support import (
    FakeUpstream,
    Reply,
    build,
    call,
    check_sigv4,
    converse_event,
    converse_exception,
    event_message,
    fixture_bytes,
    recorded_converse_stream,
    split,
)

from tollway.dialects.endpoints import Endpoint
from tollway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from tollway.providers.base import Provider
from tollway.providers.bedrock import EVENT_STREAM, BedrockProvider
from tollway.settings import ConfigError

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token"
REGION = "eu-west-3"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BODY = {"messages": [{"role": "user", "content": [{"text": "Capital of France?"}]}]}
CREDENTIALS = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}


def bedrock(**config: Any) -> BedrockProvider:
    provider = build("bedrock", **{"region": REGION, **CREDENTIALS, **config})
    assert isinstance(provider, BedrockProvider)
    return provider


def test_default_url_from_region_and_model_id() -> None:
    provider = bedrock()
    host = f"https://bedrock-runtime.{REGION}.amazonaws.com"
    # ':' is sent as is: that is how the HTTP client puts it on the wire, and it is signed so.
    assert provider.url(call(Endpoint.CONVERSE, model=MODEL)) == f"{host}/model/{MODEL}/converse"
    streamed = call(Endpoint.CONVERSE, model=MODEL, stream=True)
    assert provider.url(streamed) == f"{host}/model/{MODEL}/converse-stream"


def test_arn_model_ids_stay_one_path_segment() -> None:
    arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.amazon.nova-pro-v1:0"
    url = bedrock().url(call(Endpoint.CONVERSE, model=arn))
    assert url.endswith(
        "/model/arn:aws:bedrock:eu-west-3:123456789012:inference-profile%2Feu.amazon.nova-pro-v1:0"
        "/converse"
    )


def test_region_is_required_and_keys_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match=r"providers\.br\.region"):
        build("bedrock", name="br", **CREDENTIALS)
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        build("bedrock", region=REGION, aws_access_key_id=ACCESS_KEY)


def test_headers_are_unsigned_until_sent_and_an_api_key_is_a_bearer_token() -> None:
    assert bedrock().headers(call(Endpoint.CONVERSE)) == {"content-type": "application/json"}
    with_key = bedrock(api_key="ABSKQmVkcm9ja0FQSUtleS1example")
    assert with_key.headers(call(Endpoint.CONVERSE))["authorization"] == (
        "Bearer ABSKQmVkcm9ja0FQSUtleS1example"
    )
    assert bedrock().price_provider_id == "aws"
    assert bedrock(base_url="https://vpce-1.bedrock-runtime.example.com").price_api_url is None
    assert bedrock().stream_content_types == frozenset({EVENT_STREAM})


async def test_send_is_sigv4_signed_over_what_is_sent(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    upstream.script(Reply(body=fixture_bytes("bedrock/converse.json")))
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url, **CREDENTIALS)
    response = await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL))
    usage = provider.usage_from_body(await response.read())
    (seen,) = upstream.seen
    assert seen.path == f"/model/{MODEL}/converse"
    assert seen.json() == BODY
    assert seen.headers["content-type"] == "application/json"
    signed = check_sigv4(seen, ACCESS_KEY, SECRET_KEY, REGION)
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    assert "x-amz-security-token" not in seen.headers
    assert usage is not None
    assert usage.input_tokens == 20 + 1000 + 200
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        1000,
        200,
        9,
    )


async def test_session_token_is_sent_and_signed(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    upstream.script(Reply(body=fixture_bytes("bedrock/converse.json")))
    provider = provider_factory(
        "bedrock",
        region=REGION,
        base_url=upstream.url,
        aws_session_token=SESSION_TOKEN,
        **CREDENTIALS,
    )
    arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude:0"
    await (await provider.send(call(Endpoint.CONVERSE, BODY, model=arn))).read()
    (seen,) = upstream.seen
    assert seen.headers["x-amz-security-token"] == SESSION_TOKEN
    assert "%2F" in seen.path
    assert "x-amz-security-token" in check_sigv4(seen, ACCESS_KEY, SECRET_KEY, REGION)


async def test_api_key_is_sent_without_signing(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    upstream.script(Reply(body=fixture_bytes("bedrock/converse.json")))
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url, api_key="ABSKkey")
    await (await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL))).read()
    (seen,) = upstream.seen
    assert seen.headers["authorization"] == "Bearer ABSKkey"
    assert "x-amz-date" not in seen.headers


async def test_default_credential_chain_when_none_configured(
    upstream: FakeUpstream,
    provider_factory: Callable[..., Provider],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    upstream.script(Reply(body=fixture_bytes("bedrock/converse.json")))
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url)
    await (await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL))).read()
    check_sigv4(upstream.seen[0], "AKIAENVIRONMENTKEY01", "environment-secret", REGION)


@pytest.mark.parametrize("piece", [None, 1, 13, 100])
async def test_event_stream_becomes_sse_events(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider], piece: int | None
) -> None:
    recorded = recorded_converse_stream("bedrock/stream_text.json")
    chunks = [recorded] if piece is None else split(recorded, piece)
    upstream.script(Reply(chunks=chunks, content_type=EVENT_STREAM))
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url, **CREDENTIALS)
    response = await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL, stream=True))
    assert response.content_type in provider.stream_content_types
    meter = provider.stream_meter(Endpoint.CONVERSE, strip_usage=False)
    events = []
    async for event in provider.stream_events(response):
        assert not meter.finished
        assert meter.observe(event) == event
        events.append(event)
    assert upstream.seen[0].path == f"/model/{MODEL}/converse-stream"
    check_sigv4(upstream.seen[0], ACCESS_KEY, SECRET_KEY, REGION)
    assert [e.split(b"\n")[0] for e in events] == [
        b"event: messageStart",
        b"event: contentBlockDelta",
        b"event: contentBlockDelta",
        b"event: contentBlockStop",
        b"event: messageStop",
        b"event: metadata",
    ]
    assert events[1] == (
        b'event: contentBlockDelta\ndata: {"contentBlockIndex":0,"delta":{"text":"Paris"},'
        b'"p":"abcdefghij"}\n\n'
    )
    assert meter.finished
    assert meter.usage is not None
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (20, 6)
    assert meter.generated_text() == "Paris is the capital."


async def test_stream_exception_ends_the_stream(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    chunks = [
        converse_event("messageStart", {"role": "assistant"}),
        converse_exception("throttlingException", "Too many tokens, please wait."),
    ]
    upstream.script(Reply(chunks=chunks, content_type=EVENT_STREAM))
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url, **CREDENTIALS)
    response = await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL, stream=True))
    events = []
    with pytest.raises(UpstreamUnavailable, match="throttlingException") as caught:
        async for event in provider.stream_events(response):
            events.append(event)
    assert caught.value.code == "upstream_rate_limited"
    assert len(events) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("modelStreamErrorException", UpstreamError),
        ("internalServerException", UpstreamError),
        ("serviceUnavailableException", UpstreamUnavailable),
        ("validationException", UpstreamError),
    ],
)
def test_stream_exception_kinds(kind: str, error: type[UpstreamError]) -> None:
    raised = bedrock()._stream_exception(kind, orjson.dumps({"message": f"bad {ACCESS_KEY}"}))
    assert type(raised) is error
    assert ACCESS_KEY not in raised.message


async def test_truncated_and_garbled_streams_are_errors(
    upstream: FakeUpstream, provider_factory: Callable[..., Provider]
) -> None:
    recorded = recorded_converse_stream("bedrock/stream_text.json")
    garbled = bytearray(event_message({":message-type": "event"}, b"{}"))
    garbled[-1] ^= 0xFF  # a wrong message CRC
    upstream.script(
        Reply(chunks=[recorded[:-10]], content_type=EVENT_STREAM),
        Reply(chunks=[bytes(garbled)], content_type=EVENT_STREAM),
    )
    provider = provider_factory("bedrock", region=REGION, base_url=upstream.url, **CREDENTIALS)
    for message in ("middle of an event", "malformed event stream"):
        response = await provider.send(call(Endpoint.CONVERSE, BODY, model=MODEL, stream=True))
        with pytest.raises(UpstreamError, match=message):
            async for _ in provider.stream_events(response):
                pass


def test_validation_error_reaches_the_client_as_context_length() -> None:
    error = bedrock().error_for(400, fixture_bytes("bedrock/error_validation.json"), None)
    assert isinstance(error, UpstreamRejected)
    assert error.code == "context_length_exceeded"
    assert "Input is too long" in error.message


def test_throttling_is_rate_limited() -> None:
    error = bedrock().error_for(429, fixture_bytes("bedrock/error_throttling.json"), None)
    assert isinstance(error, UpstreamUnavailable)
    assert error.code == "upstream_rate_limited"


def test_model_timeout_is_a_timeout() -> None:
    body = b'{"message": "Model has timed out in processing the request."}'
    assert isinstance(bedrock().error_for(408, body, None), UpstreamTimeout)


def test_denied_credentials_say_nothing_about_them() -> None:
    error = bedrock().error_for(403, fixture_bytes("bedrock/error_access_denied.json"), None)
    assert type(error) is UpstreamError
    assert error.message == "Provider 'up' rejected the gateway's credentials."


def test_aws_credentials_are_redacted_from_messages() -> None:
    provider = bedrock(aws_session_token=SESSION_TOKEN)
    echoed = (
        f"Credential={ACCESS_KEY}/20250101/{REGION}/bedrock/aws4_request {SECRET_KEY} "
        f"{SESSION_TOKEN} and ASIAQWERTYUIOPASDFGH"
    )
    error = provider.error_for(400, orjson.dumps({"message": echoed}), None)
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, "ASIAQWERTYUIOPASDFGH"):
        assert secret not in error.message
