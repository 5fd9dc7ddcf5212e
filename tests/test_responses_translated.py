"""The Responses API on models whose provider does not serve it, through the real gateway.

"claude-test" is served by an Anthropic-type provider; "local-chat" by an OpenAI-type
server configured without /v1/responses (``responses_api: false``, like a local vLLM or
Ollama). The official OpenAI SDK calls ``responses.create`` and ``responses.stream``;
the scripted fake upstream records what it received.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from checks import openai_error
from fake_upstream import CutMidStream, FakeUpstream, Respond
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
    GatewayServer,
    gateway_settings,
)

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_USE = {
    "id": "msg_tool1",
    "type": "message",
    "role": "assistant",
    "model": "claude-upstream-1",
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 40, "output_tokens": 12},
}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


TOOL_USE_STREAM = b"".join(
    [
        _sse("message_start", {"message": {**TOOL_USE, "content": [], "stop_reason": None,
                                           "usage": {"input_tokens": 40, "output_tokens": 1}}}),
        _sse("content_block_start", {"index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {}}}),
        _sse("content_block_delta", {"index": 0, "delta": {
            "type": "input_json_delta", "partial_json": '{"city": '}}),
        _sse("content_block_delta", {"index": 0, "delta": {
            "type": "input_json_delta", "partial_json": '"Rome"}'}}),
        _sse("content_block_stop", {"index": 0}),
        _sse("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                               "usage": {"output_tokens": 9}}),
        _sse("message_stop", {}),
    ]
)  # fmt: skip


@pytest.fixture(scope="module")
def gw(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway with an Anthropic model and a chat-only OpenAI-type server."""
    providers = {
        "an": {"type": "anthropic", "base_url": fake_server.url, "api_key": ANTHROPIC_UPSTREAM_KEY},
        "chat-only": {
            "type": "openai",
            "base_url": fake_server.url + "/v1",
            "api_key": OPENAI_UPSTREAM_KEY,
            "responses_api": False,
        },
    }
    models = [
        {"name": "claude-test", "provider": "an", "model": "claude-upstream-1"},
        {"name": "local-chat", "provider": "chat-only", "model": "local-model-1"},
    ]
    settings = gateway_settings(
        fake_server, tmp_path_factory.mktemp("responses"), providers=providers, models=models
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def sdk(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)
    yield client
    client.close()


def test_create_on_an_anthropic_model(sdk: openai.OpenAI, fake: FakeUpstream) -> None:
    response = sdk.responses.create(
        model="claude-test", input="Hi", instructions="Be brief.", max_output_tokens=100
    )
    assert response.output_text
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens > 0
    received = fake.last()
    assert received.path == "/v1/messages"
    assert received.body["system"] == "Be brief."
    assert received.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert received.body["max_tokens"] == 100


def test_stream_on_a_chat_only_server(sdk: openai.OpenAI, fake: FakeUpstream) -> None:
    with sdk.responses.stream(model="local-chat", input="Hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text
    received = fake.last()
    assert received.path == "/v1/chat/completions"
    assert received.body["model"] == "local-model-1"
    assert received.body["stream_options"] == {"include_usage": True}


def test_tool_round_trip_on_an_anthropic_model(sdk: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(Respond(body=orjson.dumps(TOOL_USE)), path="/v1/messages")
    first = sdk.responses.create(model="claude-test", input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.call_id, orjson.loads(call.arguments)) == (
        "get_weather",
        "toolu_01",
        {"city": "Paris"},
    )
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"},
    ]
    second = sdk.responses.create(model="claude-test", input=history, tools=[WEATHER])
    assert second.output_text
    messages = fake.last().body["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_01"


def test_streamed_tool_call_on_an_anthropic_model(sdk: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(
        Respond(body=TOOL_USE_STREAM, content_type="text/event-stream"), path="/v1/messages"
    )
    with sdk.responses.stream(model="claude-test", input="Rome?", tools=[WEATHER]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert "".join(deltas) == call.arguments == '{"city": "Rome"}'
    assert final.usage is not None and final.usage.input_tokens == 40


def test_previous_response_id_is_a_clear_400(gw: GatewayServer) -> None:
    response = httpx.post(
        gw.url + "/v1/responses",
        json={"model": "claude-test", "input": "more", "previous_response_id": "resp_abc"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    error = openai_error(response, 400)
    assert error["param"] == "previous_response_id"
    assert "input" in error["message"]


def test_failure_mid_stream_is_response_failed(gw: GatewayServer, fake: FakeUpstream) -> None:
    fake.script(CutMidStream(after_events=3), path="/v1/messages")
    with httpx.stream(
        "POST",
        gw.url + "/v1/responses",
        json={"model": "claude-test", "input": "Hi", "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    ) as response:
        raw = b"".join(response.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert events[0].startswith(b"event: response.created")
    # response.failed (what Codex reads), then the error event the OpenAI SDKs raise on.
    assert events[-2].startswith(b"event: response.failed")
    failed = orjson.loads(events[-2].split(b"data: ", 1)[1])
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"]
    assert orjson.loads(events[-1].removeprefix(b"data: "))["error"]["message"]


def test_responses_calls_are_metered(sdk: openai.OpenAI, gw: GatewayServer) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gw.url + "/api/v1", headers=headers) as api:
        before = api.get("/spend", params={"group_by": "endpoint"}).json()
        sdk.responses.create(model="claude-test", input="Hi")
        after = api.get("/spend", params={"group_by": "endpoint"}).json()
    by_endpoint = {g["group"]: g for g in after["groups"]}
    earlier = {g["group"]: g for g in before["groups"]}.get("responses", {"requests": 0})
    assert by_endpoint["responses"]["requests"] == earlier["requests"] + 1
    assert by_endpoint["responses"]["input_tokens"] > 0
