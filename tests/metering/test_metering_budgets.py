"""Budgets never overshoot, in one gateway process (in-memory ledger).

The ``dollar-*`` models cost one UNIT ($0.01) per output token and nothing per input
token, so a call with ``max_tokens=10`` reserves exactly 10 UNITs; with the upstream
reporting 10 output tokens it also costs exactly 10 UNITs, so how many calls fit a
budget does not depend on timing. Amounts below are in UNITs.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from metering_support import (
    CHEAP_WITH_FALLBACK,
    DOLLAR_CLAUDE,
    DOLLAR_GPT,
    MESSAGES,
    Metered,
    MeteredUpstream,
    Tokens,
    budget,
    insert_spend,
    new_key,
    new_project,
    pipelined,
    spend,
    units,
    wait_for_requests,
)

from checks import anthropic_error, openai_error
from fake_upstream import Fail
from harness import GatewayServer

WORST = Tokens(input=17, output=10)  # actual == reserved: 10 UNITs a call
# A call settles (its hold replaced by its cost) a moment after its response is sent.
SETTLE = 0.2
settled = threading.Event()  # never set: ``settled.wait(SETTLE)`` is a short pause


def chat_body(max_tokens: int = 10) -> dict[str, Any]:
    """A chat call on the one-UNIT-per-output-token model."""
    return {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": max_tokens}


def messages_body(max_tokens: int = 10) -> dict[str, Any]:
    """A messages call on the one-UNIT-per-output-token model."""
    return {"model": DOLLAR_CLAUDE, "messages": MESSAGES, "max_tokens": max_tokens}


async def fire(client: httpx.AsyncClient, secret: str, count: int) -> list[httpx.Response]:
    """``count`` concurrent calls, alternating OpenAI chat and Anthropic messages."""

    async def one(index: int) -> httpx.Response:
        if index % 2:
            return await client.post(
                "/v1/messages",
                json=messages_body(),
                headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
            )
        return await client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={"authorization": f"Bearer {secret}"},
        )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def check_refusals(responses: list[httpx.Response]) -> None:
    """Every refusal is a 402 in the dialect of the endpoint called."""
    for response in responses:
        if response.status_code == 200:
            continue
        if response.request.url.path == "/v1/messages":
            error = anthropic_error(response, 402)
            assert error["type"] == "billing_error"
        else:
            error = openai_error(response, 402)
            assert error["code"] == "budget_exceeded"
            assert error["type"] == "insufficient_quota"
        assert "Budget exhausted" in error["message"]


def outcome(responses: list[httpx.Response]) -> dict[int, int]:
    """Status -> count."""
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts


async def test_concurrent_calls_never_overspend(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, ahttp: httpx.AsyncClient
) -> None:
    key = new_key(api, max_budget_usd=budget(35))
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    up.script(Metered(WORST), path="/v1/messages", persistent=True)
    responses = await fire(ahttp, key["key"], 40)
    assert outcome(responses) == {200: 3, 402: 37}
    check_refusals(responses)
    report = await asyncio.to_thread(wait_for_requests, api, 40, key=key["id"])
    assert report["totals"]["requests"] == 40
    assert Decimal(report["totals"]["cost_usd"]) == units(30)
    assert Decimal(report["totals"]["cost_usd"]) <= units(35)
    assert len(up.requests) == 3, "refused calls must not reach the upstream"


async def test_concurrent_slow_calls_never_overspend(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, ahttp: httpx.AsyncClient
) -> None:
    """Calls cost less than they reserve and settle while others wait: whatever is
    admitted, the recorded total stays within the budget."""
    key = new_key(api, max_budget_usd=budget(35))
    cheaper = Metered(Tokens(input=17, output=7), delay=0.05)
    up.script(cheaper, path="/v1/chat/completions", persistent=True)
    up.script(cheaper, path="/v1/messages", persistent=True)
    responses = await fire(ahttp, key["key"], 40)
    counts = outcome(responses)
    assert set(counts) <= {200, 402}
    # 3 fit at once; settled savings can admit one more (7 x 3 + 10 <= 35), never a 5th.
    assert 3 <= counts[200] <= 4
    check_refusals(responses)
    report = await asyncio.to_thread(wait_for_requests, api, 40, key=key["id"])
    assert Decimal(report["totals"]["cost_usd"]) == units(7) * counts[200]
    assert Decimal(report["totals"]["cost_usd"]) <= units(35)


def test_reservation_settles_to_the_actual_cost(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    """Each call reserves $10 and costs $6: room freed by settling is usable again."""
    key = new_key(api, max_budget_usd=budget(35))
    up.script(Metered(Tokens(input=17, output=6)), path="/v1/chat/completions", persistent=True)
    headers = {"authorization": f"Bearer {key['key']}"}
    statuses = []
    for _ in range(7):
        statuses.append(
            http.post("/v1/chat/completions", json=chat_body(), headers=headers).status_code
        )
        settled.wait(SETTLE)  # see test_next_call_sees_the_settled_cost
    assert statuses == [200] * 5 + [402] * 2
    # A smaller request still fits: $30 spent, $5 left, max_tokens=5 reserves $5.
    assert http.post("/v1/chat/completions", json=chat_body(5), headers=headers).status_code == 200
    shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    assert Decimal(shown["current_period"]) == units(36)
    assert Decimal(shown["lifetime"]) == units(36)


def test_max_output_tokens_of_model_or_default_bounds_the_reservation(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    """Without max_tokens the reservation uses default_max_output_tokens (32768 here):
    327.68 USD on this model, so a budget of 100 UNITs refuses the call before it starts."""
    key = new_key(api, max_budget_usd=budget(100))
    response = http.post(
        "/v1/chat/completions",
        json={"model": DOLLAR_GPT, "messages": MESSAGES},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    error = openai_error(response, 402)
    assert "327.680000" in error["message"]
    assert up.requests == []


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start() -> datetime:
    return _midnight().replace(day=1)


@pytest.mark.parametrize("period", ["day", "month"])
async def test_period_budget_ignores_spend_before_the_period(
    period: str,
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
) -> None:
    key = new_key(api, max_budget_usd=budget(15), budget_period=period)
    start = _midnight() if period == "day" else _month_start()
    await insert_spend(
        mgw.settings.database_path_url,
        key_id=key["id"],
        project_id=key["project_id"],
        ts=start - timedelta(seconds=1),
        cost=units(100),
    )
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    headers = {"authorization": f"Bearer {key['key']}"}
    first = await asyncio.to_thread(
        http.post, "/v1/chat/completions", json=chat_body(), headers=headers
    )
    assert first.status_code == 200, first.text
    second = await asyncio.to_thread(
        http.post, "/v1/chat/completions", json=chat_body(), headers=headers
    )
    assert "for this " + period in openai_error(second, 402)["message"]

    shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    assert shown["period"] == period
    assert datetime.fromisoformat(shown["period_start"]) == start
    assert Decimal(shown["current_period"]) == units(10)
    assert Decimal(shown["lifetime"]) == units(110)


async def test_spend_at_the_period_start_counts(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, max_budget_usd=budget(15), budget_period="day")
    await insert_spend(
        mgw.settings.database_path_url,
        key_id=key["id"],
        project_id=key["project_id"],
        ts=_midnight(),
        cost=units(6),
    )
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    response = await asyncio.to_thread(
        http.post,
        "/v1/chat/completions",
        json=chat_body(),
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert "$0.090000 left" in openai_error(response, 402)["message"]


async def test_lifetime_budget_counts_old_spend(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, max_budget_usd=budget(50))
    await insert_spend(
        mgw.settings.database_path_url,
        key_id=key["id"],
        project_id=key["project_id"],
        ts=datetime.now(UTC) - timedelta(days=400),
        cost=units(45),
    )
    response = await asyncio.to_thread(
        http.post,
        "/v1/chat/completions",
        json=chat_body(),
        headers={"authorization": f"Bearer {key['key']}"},
    )
    openai_error(response, 402)
    shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    assert shown["period"] is None
    assert Decimal(shown["current_period"]) == Decimal(shown["lifetime"]) == units(45)


def test_project_budget_blocks_its_keys(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    project = new_project(api, max_budget_usd=budget(15))
    rich = new_key(api, project=project["name"], max_budget_usd=budget(1000))
    unbudgeted = new_key(api, project=project["name"])
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    up.script(Metered(WORST), path="/v1/messages", persistent=True)

    ok = http.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": f"Bearer {rich['key']}"}
    )
    assert ok.status_code == 200
    refused = http.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": f"Bearer {rich['key']}"}
    )
    assert "project's budget of $0.15" in openai_error(refused, 402)["message"]
    refused = http.post(
        "/v1/messages", json=messages_body(), headers={"x-api-key": unbudgeted["key"]}
    )
    assert "project's budget" in anthropic_error(refused, 402)["message"]
    # A smaller call still fits the $5 the project has left.
    assert (
        http.post(
            "/v1/messages", json=messages_body(5), headers={"x-api-key": unbudgeted["key"]}
        ).status_code
        == 200
    )

    shown = api.get(f"/projects/{project['id']}").json()["spend_usd"]
    assert Decimal(shown["current_period"]) == units(20)
    assert Decimal(shown["lifetime"]) == units(20)
    rich_shown = api.get(f"/keys/{rich['id']}").json()["spend_usd"]
    assert Decimal(rich_shown["lifetime"]) == units(10)
    report = spend(api, project=project["name"], group_by="key")
    by_key = {group["group"]: Decimal(group["cost_usd"]) for group in report["groups"]}
    assert by_key == {rich["id"]: units(10), unbudgeted["id"]: units(10)}


def test_key_budget_applies_inside_a_roomy_project(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    project = new_project(api, max_budget_usd=budget(1000), budget_period="month")
    key = new_key(api, project=project["name"], max_budget_usd=budget(15))
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    headers = {"authorization": f"Bearer {key['key']}"}
    assert http.post("/v1/chat/completions", json=chat_body(), headers=headers).status_code == 200
    refused = http.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert "API key's budget of $0.15" in openai_error(refused, 402)["message"]
    shown = api.get(f"/projects/{project['id']}").json()["spend_usd"]
    assert shown["period"] == "month"
    assert Decimal(shown["current_period"]) == units(10)


def test_raised_budget_applies_at_once(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, max_budget_usd=budget(15))
    up.script(Metered(WORST), path="/v1/chat/completions", persistent=True)
    headers = {"authorization": f"Bearer {key['key']}"}
    assert http.post("/v1/chat/completions", json=chat_body(), headers=headers).status_code == 200
    openai_error(http.post("/v1/chat/completions", json=chat_body(), headers=headers), 402)
    patched = api.patch(f"/keys/{key['id']}", json={"max_budget_usd": budget(25)})
    assert patched.status_code == 200, patched.text
    assert http.post("/v1/chat/completions", json=chat_body(), headers=headers).status_code == 200
    openai_error(http.post("/v1/chat/completions", json=chat_body(), headers=headers), 402)
    assert Decimal(api.get(f"/keys/{key['id']}").json()["spend_usd"]["lifetime"]) == units(20)


def test_worst_case_counts_every_choice(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    """n=4 choices of up to 10 tokens may generate 40: the reservation must cover them,
    or one call spends past the budget (40 UNITs on 35)."""
    key = new_key(api, max_budget_usd=budget(35))
    up.script(Metered(Tokens(input=17, output=40)), path="/v1/chat/completions")
    response = http.post(
        "/v1/chat/completions",
        json={**chat_body(), "n": 4},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert response.status_code in (200, 402)
    report = wait_for_requests(api, 1, key=key["id"])
    assert Decimal(report["totals"]["cost_usd"]) <= units(35)


def test_fallback_is_metered_at_the_price_of_the_model_that_served(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api, max_budget_usd=budget(35))
    up.script(Fail(500), Metered(WORST), path="/v1/chat/completions")
    response = http.post(
        "/v1/chat/completions",
        json={"model": CHEAP_WITH_FALLBACK, "messages": MESSAGES, "max_tokens": 10},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    assert response.status_code == 200, response.text
    assert [r.body["model"] for r in up.requests] == ["cheap-1", "dollar-gpt-1"]
    assert Decimal(response.headers["x-tollway-cost-usd"]) == units(10)
    report = wait_for_requests(api, 1, key=key["id"], group_by="model")
    assert report["totals"]["requests"] == 1
    assert Decimal(report["totals"]["cost_usd"]) == units(10)


def test_reservation_covers_the_priciest_fallback(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    """The primary would cost 0.001 UNITs at most, its fallback 10: a budget of 5 cannot
    promise to pay for the call, so it is refused before it starts."""
    key = new_key(api, max_budget_usd=budget(5))
    response = http.post(
        "/v1/chat/completions",
        json={"model": CHEAP_WITH_FALLBACK, "messages": MESSAGES, "max_tokens": 10},
        headers={"authorization": f"Bearer {key['key']}"},
    )
    openai_error(response, 402)
    assert up.requests == []


def test_next_call_sees_the_settled_cost(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client
) -> None:
    up.script(Metered(Tokens(input=17, output=6)), path="/v1/chat/completions", persistent=True)
    refused = 0
    for _ in range(10):
        key = new_key(api, max_budget_usd=budget(16))
        # The first call reserves $10 and spends $6: exactly one more $10 call fits.
        statuses = pipelined(mgw.port, "/v1/chat/completions", chat_body(), key["key"])
        assert statuses[0] == 200
        refused += statuses[1] == 402
    assert refused == 0
