"""Load balancing across a model's deployments: weighted, least-busy, lowest-latency,
and each deployment's own ``rpm`` and ``max_parallel`` limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from routing_support import AUTH, MESSAGES, Gateway, StartGateway, Upstreams, deployment, model

from checks import openai_error
from fake_upstream import Stall

# These send one conversation again and again to watch the strategy spread it, so
# prompt-cache affinity (which keeps a conversation on one deployment) is off.
MODELS = [
    model(
        "weighted",
        affinity=False,
        deployments=[deployment("oa-a", "w-a", weight=3), deployment("oa-b", "w-b", weight=1)],
    ),
    model(
        "least-busy",
        routing="least-busy",
        affinity=False,
        deployments=[deployment("oa-a", "lb-a"), deployment("oa-b", "lb-b")],
    ),
    model(
        "fastest",
        routing="lowest-latency",
        affinity=False,
        deployments=[deployment("oa-a", "ll-a"), deployment("oa-b", "ll-b")],
    ),
    model(
        "rpm-capped",
        deployments=[
            deployment("oa-a", "rpm-a", weight=1000, rpm=3),
            deployment("oa-b", "rpm-b", weight=0.001),
        ],
    ),
    model(
        "parallel-capped",
        deployments=[
            deployment("oa-a", "par-a", weight=1000, max_parallel=2),
            deployment("oa-b", "par-b", weight=0.001),
        ],
    ),
    model("parallel-solo", deployments=[deployment("oa-a", "par-solo", max_parallel=1)]),
]


async def _calls(
    gw: Gateway, name: str, count: int, *, stagger: float = 0.0, concurrency: int = 20
) -> list[httpx.Response]:
    """``count`` calls, ``stagger`` seconds apart (at most ``concurrency`` at a time)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    body: dict[str, Any] = {"model": name, "messages": MESSAGES}
    async with httpx.AsyncClient(base_url=gw.url, timeout=10, limits=limits) as client:

        async def one(index: int) -> httpx.Response:
            await asyncio.sleep(stagger * index)
            async with gate:
                return await client.post("/v1/chat/completions", json=body, headers=AUTH)

        return await asyncio.gather(*(one(i) for i in range(count)))


def _served_by(responses: list[httpx.Response]) -> list[str]:
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    return [r.json()["model"] for r in responses]


async def test_weighted_follows_the_weights(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    served = _served_by(await _calls(gw, "weighted", 200))
    on_a = served.count("w-a")
    # 3:1 -> 150 expected; the bounds are four standard deviations wide.
    assert 125 <= on_a <= 175, on_a
    assert on_a + served.count("w-b") == 200
    assert (len(ups.a.requests), len(ups.b.requests)) == (on_a, 200 - on_a)


async def test_least_busy_prefers_the_idle_deployment(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    ups.a.script(Stall(1.0), persistent=True)  # A is slow: its calls stay in flight
    served = _served_by(await _calls(gw, "least-busy", 14, stagger=0.05))
    # Once A holds a call, every later one finds B idle (a 50/50 split would give ~7).
    assert served.count("lb-a") <= 2, served
    assert served.count("lb-b") >= 12


def test_lowest_latency_prefers_the_faster_deployment(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    ups.a.script(Stall(0.15), persistent=True)
    served = [gw.chat("fastest").json()["model"] for _ in range(25)]
    # Warm-up tries each deployment once; afterwards the faster one gets everything.
    assert sorted(served[:2]) == ["ll-a", "ll-b"]
    assert served[2:] == ["ll-b"] * 23
    slow = gw.deployment_state("fastest", "oa-a")["latency_ewma_ms"]
    fast = gw.deployment_state("fastest", "oa-b")["latency_ewma_ms"]
    assert slow >= 150 > fast


def test_lowest_latency_moves_when_the_fast_one_slows_down(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS)
    ups.a.script(Stall(0.12), persistent=True)
    for _ in range(4):
        gw.chat("fastest")
    ups.a.reset()
    ups.b.script(Stall(0.3), persistent=True)
    served = [gw.chat("fastest").json()["model"] for _ in range(8)]
    # B's latency average climbs past A's ~120 ms within a few calls.
    assert "ll-a" in served, served
    assert served[-1] == "ll-a"


def _wait_for_fresh_minute(margin: float = 4.0) -> None:
    """The rpm window is the calendar minute: do not start a count just before it ends."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_rpm_limit_steers_traffic_away(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    _wait_for_fresh_minute()
    served = [gw.chat("rpm-capped").json()["model"] for _ in range(8)]
    assert served == ["rpm-a"] * 3 + ["rpm-b"] * 5
    assert len(ups.a.requests) == 3


async def test_max_parallel_steers_traffic_away(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    ups.a.script(Stall(0.5), persistent=True)
    served = _served_by(await _calls(gw, "parallel-capped", 6, stagger=0.02))
    assert served.count("par-a") == 2, served
    assert served.count("par-b") == 4


async def test_max_parallel_reached_everywhere_fails_fast(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS)
    ups.a.script(Stall(0.5), persistent=True)
    started = time.monotonic()
    responses = await _calls(gw, "parallel-solo", 3, stagger=0.05)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 503, 503]
    for response in responses:
        if response.status_code == 503:
            error = openai_error(response, 503)
            assert "unavailable" in error["message"]
    assert len(ups.a.requests) == 1  # never more than max_parallel upstream at once
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("name", ["weighted", "least-busy", "fastest"])
def test_every_strategy_retries_on_the_other_deployment(
    start: StartGateway, ups: Upstreams, name: str
) -> None:
    gw = start(MODELS, retry={"attempts": 1}, timeouts={"read": 0.3})
    ups.a.script(Stall(5), persistent=True)  # A never answers in time
    for _ in range(4):
        response = gw.chat(name, timeout=5)
        assert response.status_code == 200, response.text
    assert len(ups.b.requests) == 4
