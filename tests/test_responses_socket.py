"""The Responses API over a WebSocket, as Codex opens it: requests through the same
pipeline as HTTP, continuation of the connection's last response, warm-ups, errors.

A real WebSocket client (the ``websockets`` package) talks to the real gateway on a real
port, in front of the scripted fake upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer


@pytest.fixture
def ws(gateway: GatewayServer) -> Iterator[ClientConnection]:
    """A Responses WebSocket with the master key."""
    url = gateway.url.replace("http://", "ws://") + "/v1/responses"
    with connect(url, additional_headers={"authorization": f"Bearer {MASTER_KEY}"}) as socket:
        yield socket


def ask(socket: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    """Send one ``response.create`` and read messages up to its last one."""
    socket.send(json.dumps({"type": "response.create", **body}))
    messages: list[dict[str, Any]] = []
    while True:
        message = json.loads(socket.recv(timeout=10))
        messages.append(message)
        if message["type"] in ("response.completed", "response.failed", "error"):
            return messages


def test_a_request_streams_back_as_messages(ws: ClientConnection, fake: FakeUpstream) -> None:
    messages = ask(ws, model="gpt-test", input="Hi")
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(m["delta"] for m in messages if m["type"] == "response.output_text.delta")
    assert text
    received = fake.last()
    assert received.path == "/v1/responses"
    assert received.body["stream"] is True
    assert "type" not in received.body


def test_translated_models_work_too(ws: ClientConnection, fake: FakeUpstream) -> None:
    messages = ask(ws, model="claude-test", input="Hi", instructions="Be brief.")
    assert messages[-1]["type"] == "response.completed"
    assert fake.last().path == "/v1/messages"
    assert fake.last().body["system"] == "Be brief."


def test_continuing_the_last_response_sends_the_whole_conversation(
    ws: ClientConnection, fake: FakeUpstream
) -> None:
    first = ask(ws, model="claude-test", input=[{"role": "user", "content": "Hi"}])
    response_id = first[-1]["response"]["id"]
    ask(
        ws,
        model="claude-test",
        previous_response_id=response_id,
        input=[{"role": "user", "content": "And then?"}],
    )
    messages = fake.last().body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Hi" and messages[2]["content"] == "And then?"


def test_an_unknown_previous_response_is_an_error_message(ws: ClientConnection) -> None:
    [message] = ask(ws, model="gpt-test", previous_response_id="resp_other", input="x")
    assert message["type"] == "error"
    assert message["status"] == 400
    assert message["error"]["code"] == "previous_response_not_found"


def test_a_warm_up_generates_nothing_and_can_be_continued(
    ws: ClientConnection, fake: FakeUpstream
) -> None:
    warm = ask(ws, model="claude-test", input=[{"role": "user", "content": "Hi"}], generate=False)
    assert [m["type"] for m in warm] == ["response.created", "response.completed"]
    assert fake.requests == []
    ask(
        ws,
        model="claude-test",
        previous_response_id=warm[-1]["response"]["id"],
        input=[{"role": "user", "content": "Go"}],
    )
    # Two user turns in a row become one Anthropic user turn with both texts.
    [turn] = fake.last().body["messages"]
    assert [block["text"] for block in turn["content"]] == ["Hi", "Go"]


def test_errors_are_error_messages_and_the_connection_stays(ws: ClientConnection) -> None:
    [message] = ask(ws, model="no-such-model", input="x")
    assert (message["type"], message["status"]) == ("error", 404)
    assert message["error"]["code"] == "model_not_found"
    ws.send("not json")
    assert json.loads(ws.recv(timeout=10))["status"] == 400
    assert ask(ws, model="gpt-test", input="Hi")[-1]["type"] == "response.completed"


def test_a_bad_key_is_refused_at_the_upgrade(gateway: GatewayServer) -> None:
    url = gateway.url.replace("http://", "ws://") + "/v1/responses"
    with pytest.raises(InvalidStatus) as caught:
        connect(url, additional_headers={"authorization": "Bearer sk-tw-nope"})
    assert caught.value.response.status_code == 401


def test_socket_calls_are_metered(ws: ClientConnection, gateway: GatewayServer) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gateway.url + "/api/v1", headers=headers) as api:
        before = api.get("/spend", params={"group_by": "endpoint"}).json()["totals"]["requests"]
        ask(ws, model="gpt-test", input="Hi")
        after = api.get("/spend", params={"group_by": "endpoint"}).json()["totals"]["requests"]
    assert after == before + 1
