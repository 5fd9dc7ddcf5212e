"""Per-deployment circuit breakers: closed -> open after N consecutive failures ->
half-open after the cooldown (one probe) -> closed on success, open again on failure."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from routing_support import (
    AUTH,
    MESSAGES,
    Gateway,
    StartGateway,
    Upstreams,
    deployment,
    model,
    wait_until,
)

from checks import anthropic_error, openai_error
from fake_upstream import Fail, Reply, Stall

COOLDOWN = 1.0
CIRCUIT = {"failures": 3, "cooldown": COOLDOWN}
MODELS = [
    # A is chosen whenever its breaker lets it (weight 1000 : 0.001).
    model(
        "cb",
        deployments=[
            deployment("oa-a", "cb-a", weight=1000),
            deployment("oa-b", "cb-b", weight=0.001),
        ],
    ),
    model("cb-solo", "oa-a"),
    model("cb-solo-claude", "an-a"),
    model("cb-fb", "oa-a", model="cb-fb-a", fallbacks=["cb-spare"]),
    model("cb-spare", "oa-c"),
]


def _gateway(start: StartGateway, cooldown: float = COOLDOWN) -> Gateway:
    return start(MODELS, retry={"attempts": 0}, circuit={**CIRCUIT, "cooldown": cooldown})


def _open(gw: Gateway, ups: Upstreams, name: str = "cb") -> None:
    """Three consecutive failures on deployment A."""
    ups.a.script(Fail(500), Fail(500), Fail(500))
    for _ in range(3):
        assert gw.chat(name).status_code == 502
    assert len(ups.a.requests) == 3


def test_three_failures_open_the_deployment(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    assert gw.deployment_state("cb", "oa-a")["state"] == "closed"
    _open(gw, ups)
    state = gw.deployment_state("cb", "oa-a")
    assert state["state"] == "open"
    assert state["failures"] == 3
    assert state["requests"] == 3
    assert state["error_rate"] == 1.0
    assert state["last_error"] == "upstream_error"
    other = gw.deployment_state("cb", "oa-b")
    assert (other["state"], other["requests"]) == ("closed", 0)

    # While open, the other deployment serves every call.
    for _ in range(5):
        response = gw.chat("cb")
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "cb-b"
    assert len(ups.a.requests) == 3
    assert len(ups.b.requests) == 5


def test_two_failures_and_a_success_keep_it_closed(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    ups.a.script(Fail(500), Fail(500), Reply(), Fail(500), Fail(500))
    statuses = [gw.chat("cb").status_code for _ in range(5)]
    assert statuses == [502, 502, 200, 502, 502]
    state = gw.deployment_state("cb", "oa-a")
    assert state["state"] == "closed"
    assert state["failures"] == 4
    assert state["error_rate"] == pytest.approx(0.8)
    assert len(ups.b.requests) == 0


def test_client_errors_do_not_open_it(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    ups.a.script(Fail(400), Fail(404), Fail(422), Fail(400), Fail(400))
    assert [gw.chat("cb").status_code for _ in range(5)] == [400, 404, 422, 400, 400]
    state = gw.deployment_state("cb", "oa-a")
    assert (state["state"], state["failures"], state["error_rate"]) == ("closed", 0, 0.0)


def test_open_without_alternatives_fails_fast_with_503(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    _open(gw, ups, "cb-solo")
    started = time.monotonic()
    error = openai_error(gw.chat("cb-solo"), 503)
    assert error["code"] == "upstream_unavailable"
    assert time.monotonic() - started < 0.5
    assert len(ups.a.requests) == 3  # the upstream was not called
    # Breakers belong to deployments: another model on the same upstream is unaffected.
    assert gw.messages("cb-solo-claude").status_code == 200


def test_open_anthropic_deployment_fails_fast_in_anthropic_shape(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = _gateway(start)
    ups.a.script(Fail(529), Fail(529), Fail(529))
    for _ in range(3):
        anthropic_error(gw.messages("cb-solo-claude"), 503)
    error = anthropic_error(gw.messages("cb-solo-claude"), 503)
    assert error["type"] == "overloaded_error"
    assert len(ups.a.requests) == 3


def test_open_deployment_sends_calls_to_the_fallback(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    ups.a.script(Fail(503), persistent=True)
    for _ in range(3):
        assert gw.chat("cb-fb").status_code == 200  # each failure falls back
    assert gw.deployment_state("cb-fb", "oa-a")["state"] == "open"
    response = gw.chat("cb-fb")
    assert response.status_code == 200
    assert response.json()["model"] == "cb-spare-up"
    assert len(ups.a.requests) == 3
    assert len(ups.c.requests) == 4
    row = gw.row(response.headers["x-request-id"])
    assert (row["provider"], row["attempts"]) == ("oa-c", 1)


def test_half_open_probe_success_closes_it(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    _open(gw, ups)
    time.sleep(COOLDOWN + 0.1)
    assert gw.deployment_state("cb", "oa-a")["state"] == "half_open"
    response = gw.chat("cb")  # the probe
    assert response.status_code == 200
    assert response.json()["model"] == "cb-a"
    assert len(ups.a.requests) == 4
    assert gw.deployment_state("cb", "oa-a")["state"] == "closed"
    for _ in range(3):
        assert gw.chat("cb").json()["model"] == "cb-a"
    assert len(ups.b.requests) == 0


def test_half_open_probe_failure_reopens_it(start: StartGateway, ups: Upstreams) -> None:
    gw = _gateway(start)
    _open(gw, ups)
    time.sleep(COOLDOWN + 0.1)
    ups.a.script(Fail(503))
    assert gw.chat("cb").status_code == 503  # the probe fails
    state = gw.deployment_state("cb", "oa-a")
    assert state["state"] == "open"
    assert state["last_error"] == "upstream_unavailable"
    # Open again for a full cooldown: B serves.
    for _ in range(3):
        assert gw.chat("cb").json()["model"] == "cb-b"
    assert len(ups.a.requests) == 4
    time.sleep(COOLDOWN + 0.1)
    assert gw.chat("cb").json()["model"] == "cb-a"
    assert gw.deployment_state("cb", "oa-a")["state"] == "closed"


async def test_half_open_lets_exactly_one_probe_through(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = _gateway(start)
    await asyncio.to_thread(_open, gw, ups)
    await asyncio.sleep(COOLDOWN + 0.1)
    ups.a.script(Stall(0.6))  # the probe is slow; others arrive meanwhile
    body = {"model": "cb", "messages": MESSAGES}
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:

        async def call(delay: float) -> httpx.Response:
            await asyncio.sleep(delay)
            return await client.post("/v1/chat/completions", json=body, headers=AUTH)

        responses = await asyncio.gather(*(call(0.05 * i) for i in range(8)))
    assert all(r.status_code == 200 for r in responses)
    models = [r.json()["model"] for r in responses]
    assert models.count("cb-a") == 1, models
    assert models.count("cb-b") == 7
    assert len(ups.a.requests) == 4
    assert gw.deployment_state("cb", "oa-a")["state"] == "closed"


@pytest.mark.parametrize("probe_end", ["upstream-400", "client-disconnect"])
def test_probe_without_verdict_does_not_wedge_the_breaker(
    start: StartGateway, ups: Upstreams, probe_end: str
) -> None:
    cooldown = 0.5
    gw = _gateway(start, cooldown)
    _open(gw, ups, "cb-solo")
    time.sleep(cooldown + 0.1)
    if probe_end == "upstream-400":
        ups.a.script(Fail(400, message="messages[0].content is empty"))
        assert gw.chat("cb-solo").status_code == 400
    else:
        ups.a.script(Stall(5))
        with pytest.raises(httpx.TimeoutException):
            gw.chat("cb-solo", timeout=0.3)
        assert wait_until(lambda: ups.a.requests[-1].dropped_at is not None)
    # The upstream is healthy now; within a cooldown the model must work again.
    deadline = time.monotonic() + cooldown + 0.75
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(gw.chat("cb-solo").status_code)
        if statuses[-1] == 200:
            break
        time.sleep(0.1)
    state = gw.deployment_state("cb-solo", "oa-a")["state"]
    assert statuses[-1] == 200, f"{len(statuses)} calls all failed, breaker {state}"
