"""The proxy switch covers the Responses WebSocket: no connection is accepted while it
is off, and a connection opened before refuses warm-ups and requests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer, gateway_settings, running_gateway

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def switched(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = gateway_settings(fake_server, tmp_path_factory.mktemp("switches-socket"))
    with running_gateway(settings) as server:
        yield server


@pytest.fixture
def gw(switched: GatewayServer, fake: FakeUpstream) -> Iterator[GatewayServer]:
    yield switched
    with httpx.Client(base_url=switched.url + "/api/v1", headers=ADMIN) as admin:
        admin.patch("/switches", json={"proxy": True, "providers": {"an": True, "oa": True}})


def _switch(gw: GatewayServer, body: dict[str, Any]) -> None:
    with httpx.Client(base_url=gw.url + "/api/v1", headers=ADMIN) as admin:
        assert admin.patch("/switches", json=body).status_code == 200


def test_responses_socket_refused_while_the_proxy_is_off(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    _switch(gw, {"proxy": False})
    url = gw.url.replace("http://", "ws://") + "/v1/responses"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=ADMIN)
    assert refused.value.response.status_code == 503


def test_an_open_socket_refuses_once_the_proxy_is_off(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    url = gw.url.replace("http://", "ws://") + "/v1/responses"
    warm_up = {"type": "response.create", "model": "gpt-test", "input": uuid.uuid4().hex}
    with connect(url, additional_headers=ADMIN) as socket:
        socket.send(json.dumps({**warm_up, "generate": False}))
        assert json.loads(socket.recv(timeout=10))["type"] == "response.created"
        assert json.loads(socket.recv(timeout=10))["type"] == "response.completed"
        _switch(gw, {"proxy": False})
        for message in ({**warm_up, "generate": False}, warm_up):
            socket.send(json.dumps(message))
            answer = json.loads(socket.recv(timeout=10))
            assert answer["type"] == "error", answer
            assert answer["status"] == 503
    assert fake.requests == []
