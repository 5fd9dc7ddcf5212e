"""Retries: a flaky deployment is invisible to clients; only retryable failures are
retried, with backoff, Retry-After, a deadline and an attempt bound."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest
from routing_support import (
    AccessLog,
    Gateway,
    StartGateway,
    Upstreams,
    deployment,
    model,
    requests_to,
)

from checks import anthropic_error, openai_error
from fake_upstream import (
    TEXT,
    Behaviour,
    CutMidStream,
    Fail,
    Reply,
    Reset,
    Stall,
)
from tollway.config import RetryConfig
from tollway.errors import UpstreamError, UpstreamUnavailable
from tollway.routing.retry import backoff

# ------------------------------------------------------------------ a flaky deployment

# One conversation sent by many clients: without affinity, so both deployments serve it.
FLAKY_MODELS = [
    model(
        "flaky-gpt",
        affinity=False,
        deployments=[deployment("oa-a", "gpt-flaky-a"), deployment("oa-b", "gpt-flaky-b")],
    ),
    model(
        "flaky-claude",
        affinity=False,
        deployments=[deployment("an-a", "claude-flaky-a"), deployment("an-b", "claude-flaky-b")],
    ),
]
FLAKY_PATTERN: list[Behaviour] = [Fail(500), Reply(), Fail(503), Reply(), Reset(), Reply()]


async def _one_call(gw: Any, index: int, oai: Any, ant: Any) -> str:
    """Call ``index`` of the storm: SDK, model and streaming vary with the index."""
    stream = index % 2 == 1
    name = "flaky-gpt" if (index // 2) % 2 == 0 else "flaky-claude"
    if index % 4 < 2:
        if stream:
            chunks = await oai.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
            return "".join(parts)
        completion = await oai.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}]
        )
        return str(completion.choices[0].message.content)
    if stream:
        async with ant.messages.stream(
            model=name, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as events:
            return "".join([text async for text in events.text_stream])
    message = await ant.messages.create(
        model=name, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    return str(message.content[0].text)  # type: ignore[union-attr]


async def test_retries_hide_a_flaky_deployment_from_concurrent_clients(
    start: StartGateway, ups: Upstreams, access_log: AccessLog
) -> None:
    gw = start(FLAKY_MODELS, retry={"attempts": 2})
    # Deployment A fails every other request (500, 503, connection reset); B is healthy.
    ups.a.script(*itertools.islice(itertools.cycle(FLAKY_PATTERN), 200))
    oai, ant = gw.aopenai(), gw.aanthropic()
    try:
        results = await asyncio.gather(
            *(_one_call(gw, i, oai, ant) for i in range(60)), return_exceptions=True
        )
    finally:
        await oai.close()
        await ant.close()

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert all(r == TEXT for r in results)

    failed_upstream = [r for r in ups.a.requests if not isinstance(r.behaviour, Reply)]
    total_upstream = len(ups.a.requests) + len(ups.b.requests)
    assert len(failed_upstream) >= 5, "deployment A should have failed a good share of calls"
    assert total_upstream == 60 + len(failed_upstream)
    assert not [r for r in ups.b.requests if not isinstance(r.behaviour, Reply)]

    # The spend records count every attempt: one extra per failure on A.
    rows = gw.rows()
    assert len(rows) == 60
    assert all(row["status"] == 200 for row in rows)
    assert sum(row["attempts"] for row in rows) == total_upstream
    assert len([row for row in rows if row["attempts"] == 2]) == len(failed_upstream)
    assert {row["provider"] for row in rows if row["attempts"] == 2} <= {"oa-b", "an-b"}
    report = gw.spend()
    assert report["totals"]["requests"] == 60

    # The access log names each failed attempt's deployment and error.
    lines = access_log.wait_for(60)
    retried = [line for line in lines if line.get("failed_attempts")]
    assert len(retried) == len(failed_upstream)
    labels = {label for line in retried for label in line["failed_attempts"]}
    assert labels <= {
        f"{provider}/{upstream}:{code}"
        for provider, upstream in (("oa-a", "gpt-flaky-a"), ("an-a", "claude-flaky-a"))
        for code in ("upstream_error", "upstream_unavailable")
    }, labels
    assert all(line["status"] == 200 for line in lines)


# ------------------------------------------------------------------ what is retried

SOLO_MODELS = [
    model("solo-gpt", "oa-a"),
    model("solo-claude", "an-a"),
    model(
        "pair-gpt",
        deployments=[deployment("oa-a", "pair-a"), deployment("oa-b", "pair-b")],
        fallbacks=["backup-gpt"],
    ),
    model(
        "pair-claude",
        deployments=[deployment("an-a", "pair-a"), deployment("an-b", "pair-b")],
        fallbacks=["backup-claude"],
    ),
    model("backup-gpt", "oa-c"),
    model("backup-claude", "an-c"),
    model(
        "heavy-a",
        deployments=[
            deployment("oa-a", "heavy-a", weight=1000),
            deployment("oa-b", "heavy-b", weight=0.001),
        ],
    ),
]

RETRYABLE: dict[str, Behaviour] = {
    "429": Fail(429, message="Rate limit reached."),
    "500": Fail(500),
    "502": Fail(502),
    "503": Fail(503),
    "504": Fail(504),
    "529": Fail(529, message="Overloaded"),
    "reset": Reset(),
    "read-timeout": Stall(3),
    "truncated-body": CutMidStream(),
}


@pytest.fixture(scope="module")
def solo(start_shared: StartGateway) -> Gateway:
    """One gateway for the tests that only count attempts (its breakers never trip)."""
    return start_shared(SOLO_MODELS, retry={"attempts": 2}, timeouts={"read": 0.5})


def _call(gw: Any, dialect: str, name: str | None = None, **body: Any) -> Any:
    if dialect == "openai":
        return gw.chat(name or "solo-gpt", **body)
    return gw.messages(name or "solo-claude", **body)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("case", list(RETRYABLE))
def test_retryable_failure_is_retried(
    solo: Gateway, ups: Upstreams, dialect: str, case: str
) -> None:
    gw = solo
    ups.a.script(RETRYABLE[case])
    response = _call(gw, dialect)
    assert response.status_code == 200, response.text
    assert len(ups.a.requests) == 2
    assert not ups.b.requests and not ups.c.requests


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_client_error_is_not_retried_nor_falls_back(
    solo: Gateway, ups: Upstreams, dialect: str, status: int
) -> None:
    gw = solo
    message = f"Request refused ({status}): messages[0] is not valid."
    for fake in ups:
        fake.script(Fail(status, message=message), persistent=True)
    name = "pair-gpt" if dialect == "openai" else "pair-claude"
    response = _call(gw, dialect, name)
    if dialect == "openai":
        error = openai_error(response, status)
    else:
        error = anthropic_error(response, status)
    assert "not valid" in error["message"]
    assert sum(len(fake.requests) for fake in ups) == 1


def test_retry_after_from_a_429_is_honoured(solo: Gateway, ups: Upstreams) -> None:
    gw = solo
    ups.a.script(Fail(429, headers={"retry-after": "1"}))
    started = time.monotonic()
    response = gw.chat("solo-gpt")
    assert response.status_code == 200, response.text
    first, second = ups.a.requests
    assert second.at - first.at >= 0.95
    assert time.monotonic() - started < 2.5


def test_retry_after_from_a_503_is_honoured(solo: Gateway, ups: Upstreams) -> None:
    gw = solo
    ups.a.script(Fail(503, headers={"retry-after": "1"}))
    response = gw.chat("solo-gpt")
    assert response.status_code == 200, response.text
    first, second = ups.a.requests
    assert second.at - first.at >= 0.95


def test_retry_after_of_one_deployment_does_not_delay_another(
    solo: Gateway, ups: Upstreams
) -> None:
    gw = solo
    ups.a.script(Fail(429, headers={"retry-after": "1.5"}), persistent=True)
    started = time.monotonic()
    response = gw.chat("heavy-a")  # A is chosen first (weight 1000), the retry avoids it
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert len(ups.b.requests) == 1
    assert elapsed < 0.75, f"the retry on B waited for A's Retry-After ({elapsed:.2f} s)"


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    config = RetryConfig(attempts=8, backoff_base=0.1, backoff_max=1.0)
    error = UpstreamError("boom")
    rng_state = random.getstate()
    random.seed(1234)
    try:
        samples = {n: [backoff(config, n, error) for _ in range(2000)] for n in range(6)}
    finally:
        random.setstate(rng_state)
    means = []
    for attempt, values in samples.items():
        ceiling = min(1.0, 0.1 * 2**attempt)
        assert all(0 <= v <= ceiling for v in values), attempt
        assert max(values) > ceiling * 0.9  # the whole range is used
        means.append(sum(values) / len(values))
    # Grows (doubling) until the cap, then stays put.
    assert means[0] < means[1] < means[2] < means[3] < means[4]
    assert means[1] == pytest.approx(2 * means[0], rel=0.15)
    assert means[3] == pytest.approx(2 * means[2], rel=0.15)
    assert means[5] == pytest.approx(means[4], rel=0.15)


def test_backoff_uses_retry_after_within_bounds() -> None:
    config = RetryConfig(backoff_base=0.01, backoff_max=0.02)
    limited = UpstreamUnavailable("slow down", headers={"retry-after": "1.5"})
    assert backoff(config, 0, limited) == 1.5
    huge = UpstreamUnavailable("slow down", headers={"retry-after": "86400"})
    assert backoff(config, 0, huge) == 60.0
    negative = UpstreamUnavailable("slow down", headers={"retry-after": "-5"})
    assert backoff(config, 0, negative) == 0.0
    garbage = UpstreamUnavailable("slow down", headers={"retry-after": "soon"})
    assert 0 <= backoff(config, 3, garbage) <= 0.02


def test_backoff_between_attempts_stays_within_its_ceiling(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(SOLO_MODELS, retry={"attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2})
    ups.a.script(Fail(500), persistent=True)
    response = gw.chat("solo-gpt")
    openai_error(response, 502)
    times = [r.at for r in ups.a.requests]
    assert len(times) == 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for attempt, gap in enumerate(gaps):
        assert gap <= min(0.2, 0.05 * 2**attempt) + 0.15, (attempt, gaps)


@pytest.mark.parametrize("attempts", [0, 1, 3])
def test_attempts_bound_the_number_of_tries(
    start: StartGateway, ups: Upstreams, attempts: int
) -> None:
    gw = start(SOLO_MODELS, retry={"attempts": attempts})
    ups.a.script(Fail(500), persistent=True)
    response = gw.messages("solo-claude")
    anthropic_error(response, 502)
    assert len(ups.a.requests) == attempts + 1


def test_attempts_spread_over_deployments_then_fallback(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(SOLO_MODELS, retry={"attempts": 3})
    for fake in (ups.a, ups.b):
        fake.script(Fail(503), persistent=True)
    response = gw.chat("pair-gpt")
    assert response.status_code == 200, response.text
    # Four tries on the model's deployments (the retry avoids the one that just failed)...
    assert len(ups.a.requests) + len(ups.b.requests) == 4
    assert ups.a.requests and ups.b.requests
    # ...then its fallback answers.
    assert requests_to(ups.c, "/v1/chat/completions") == 1
    assert response.json()["model"] == "backup-gpt-up"


def test_retry_goes_to_another_deployment_first(solo: Gateway, ups: Upstreams) -> None:
    gw = solo
    ups.a.script(Fail(500))
    response = gw.chat("heavy-a")  # A (weight 1000) first; the retry avoids it
    assert response.status_code == 200, response.text
    assert len(ups.a.requests) == 1
    assert len(ups.b.requests) == 1


def test_deadline_stops_retrying(start: StartGateway, ups: Upstreams) -> None:
    gw = start(SOLO_MODELS, retry={"attempts": 10, "deadline": 1.5})
    ups.a.script(Fail(429, headers={"retry-after": "1"}), persistent=True)
    started = time.monotonic()
    response = gw.chat("solo-gpt")
    elapsed = time.monotonic() - started
    error = openai_error(response, 503)
    assert error["code"] == "upstream_rate_limited"
    assert response.headers.get("retry-after") == "1"  # the upstream's, passed on
    # t=0 fails, waits 1 s; t=1 fails, a further 1 s would pass the 1.5 s deadline.
    assert len(ups.a.requests) == 2
    assert elapsed < 1.5


def test_deadline_bounds_jittered_retries(start: StartGateway, ups: Upstreams) -> None:
    gw = start(
        SOLO_MODELS,
        retry={"attempts": 100, "deadline": 0.6, "backoff_base": 0.1, "backoff_max": 0.1},
    )
    ups.a.script(Fail(500), persistent=True)
    started = time.monotonic()
    response = gw.chat("solo-gpt")
    elapsed = time.monotonic() - started
    openai_error(response, 502)
    assert elapsed < 1.0
    assert 2 <= len(ups.a.requests) < 100


def test_deadline_still_lets_the_fallback_answer(start: StartGateway, ups: Upstreams) -> None:
    gw = start(
        [model("limited", "oa-a", fallbacks=["spare"]), model("spare", "oa-b")],
        retry={"attempts": 3, "deadline": 2},
    )
    ups.a.script(Fail(429, headers={"retry-after": "5"}), persistent=True)
    response = gw.chat("limited")
    assert response.status_code == 200, response.text
    assert len(ups.b.requests) == 1
