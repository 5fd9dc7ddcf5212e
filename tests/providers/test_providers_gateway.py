"""Gemini and Bedrock behind the real gateway: the OpenAI SDK in, recorded answers out.

The gateway runs under uvicorn in a thread (``harness``); the fake upstream runs on the
test's event loop, so the async SDK client is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from provider_support import (
    FakeUpstream,
    Reply,
    check_sigv4,
    converse_event,
    converse_exception,
    fixture_bytes,
    recorded_converse_stream,
)

from harness import MASTER_KEY, GatewayServer, running_gateway
from tollway.providers.bedrock import EVENT_STREAM
from tollway.settings import Settings

GEMINI_KEY = "AIzaSyGatewayTest-0123456789abcdefghij"
ACCESS_KEY = "AKIAGATEWAYTEST00001"
SECRET_KEY = "gateway-test-secret-key"


@pytest.fixture
def gateway(upstream: FakeUpstream, tmp_path: Path) -> Iterator[GatewayServer]:
    settings = Settings(
        master_key=MASTER_KEY,
        data_dir=tmp_path,
        timeouts={"connect": 1.0, "read": 5.0, "stream_idle": 5.0},
        retry={"attempts": 0},
        providers={
            "google": {
                "type": "gemini",
                "api_key": GEMINI_KEY,
                "base_url": upstream.url + "/v1beta",
            },
            "aws": {
                "type": "bedrock",
                "region": "us-east-1",
                "base_url": upstream.url,
                "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY,
            },
        },
        models=[
            {"name": "flash", "provider": "google", "model": "gemini-2.0-flash"},
            {"name": "nova", "provider": "aws", "model": "amazon.nova-pro-v1:0"},
        ],
    )
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
async def client(gateway: GatewayServer) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10
    )
    yield sdk
    await sdk.close()


MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Capital of France?"}
]


async def test_gemini_chat_completion(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.script(Reply(body=fixture_bytes("gemini/generate_content.json")))
    completion = await client.chat.completions.create(model="flash", messages=MESSAGES)
    assert completion.choices[0].message.content == "The capital of France is Paris."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 120
    (seen,) = upstream.seen
    assert seen.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert seen.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
    }


async def test_gemini_stream(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    recorded = fixture_bytes("gemini/stream_text.sse")
    upstream.script(Reply(chunks=[recorded[:50], recorded[50:]], content_type="text/event-stream"))
    stream = await client.chat.completions.create(
        model="flash", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital of France is Paris."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert upstream.seen[0].path.endswith(":streamGenerateContent?alt=sse")


async def test_gemini_error_does_not_leak_the_key(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    upstream.script(Reply(status=400, body=fixture_bytes("gemini/error_invalid_key.json")))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="flash", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert GEMINI_KEY not in caught.value.response.text
    assert "API key not valid" not in caught.value.response.text


async def test_bedrock_chat_completion(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.script(Reply(body=fixture_bytes("bedrock/converse_tools.json")))
    completion = await client.chat.completions.create(model="nova", messages=MESSAGES)
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.id == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert completion.choices[0].finish_reason == "tool_calls"
    (seen,) = upstream.seen
    assert seen.path == "/model/amazon.nova-pro-v1:0/converse"
    check_sigv4(seen, ACCESS_KEY, SECRET_KEY, "us-east-1")


async def test_bedrock_stream(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    recorded = recorded_converse_stream("bedrock/stream_tools.json")
    upstream.script(Reply(chunks=[recorded[:77], recorded[77:]], content_type=EVENT_STREAM))
    stream = await client.chat.completions.create(
        model="nova", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    calls = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    arguments = "".join(call[0].function.arguments or "" for call in calls if call[0].function)
    assert arguments == '{"city": "Paris"}'
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 400
    assert upstream.seen[0].path == "/model/amazon.nova-pro-v1:0/converse-stream"


async def test_bedrock_stream_exception_reaches_the_client(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    chunks = [
        converse_event("messageStart", {"role": "assistant"}),
        converse_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Par"}}),
        converse_exception("modelStreamErrorException", "The model stopped unexpectedly."),
    ]
    upstream.script(Reply(chunks=chunks, content_type=EVENT_STREAM))
    stream = await client.chat.completions.create(model="nova", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="stopped unexpectedly"):
        async for _ in stream:
            pass


async def test_responses_api_on_gemini(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    """The Responses API reaches Gemini through chat completions, both ways."""
    upstream.script(Reply(body=fixture_bytes("gemini/generate_content.json")))
    response = await client.responses.create(
        model="flash", input="Capital of France?", instructions="Answer in one sentence."
    )
    assert response.output_text == "The capital of France is Paris."
    assert response.usage is not None and response.usage.input_tokens == 120
    body = upstream.seen[0].json()
    assert body["systemInstruction"]["parts"][0]["text"] == "Answer in one sentence."
    recorded = fixture_bytes("gemini/stream_text.sse")
    upstream.script(Reply(chunks=[recorded[:50], recorded[50:]], content_type="text/event-stream"))
    async with client.responses.stream(model="flash", input="Capital of France?") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "The capital of France is Paris."
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


async def test_responses_api_tool_call_on_bedrock(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    """A Converse tool-use stream comes back as a function_call item."""
    recorded = recorded_converse_stream("bedrock/stream_tools.json")
    upstream.script(Reply(chunks=[recorded[:77], recorded[77:]], content_type=EVENT_STREAM))
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with client.responses.stream(
        model="nova",
        input="Weather in Paris?",
        tools=[weather],  # type: ignore[list-item]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [call.arguments for call in calls] == ['{"city": "Paris"}']
    assert calls[0].call_id.startswith("tooluse_")  # the upstream's own tool-use id
    assert final.usage is not None and final.usage.input_tokens == 400
    assert upstream.seen[0].json()["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
