"""A model nobody knows the price of is never silently recorded as $0.

Without a budget the call goes through and its record is flagged ``priced=false`` (the
cost header says ``unknown``); with a budget (key or project) the call is refused with
403 ``price_unknown``, saying how to configure a price.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    DOLLAR_GPT,
    MESSAGES,
    MYSTERY_CLAUDE,
    MYSTERY_GPT,
    Metered,
    MeteredUpstream,
    Tokens,
    budget,
    new_key,
    new_project,
    spend_rows,
    units,
    wait_for_requests,
)

from checks import anthropic_error, openai_error
from harness import GatewayServer

TOKENS = Tokens(input=900, output=120)

CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": MYSTERY_GPT, "messages": MESSAGES}),
    "chat-stream": (
        "/v1/chat/completions",
        {"model": MYSTERY_GPT, "messages": MESSAGES, "stream": True},
    ),
    "responses": ("/v1/responses", {"model": MYSTERY_GPT, "input": "Say hello."}),
    "messages": (
        "/v1/messages",
        {"model": MYSTERY_CLAUDE, "messages": MESSAGES, "max_tokens": 300},
    ),
    "messages-stream": (
        "/v1/messages",
        {"model": MYSTERY_CLAUDE, "messages": MESSAGES, "max_tokens": 300, "stream": True},
    ),
}


def post(http: httpx.Client, path: str, body: dict[str, Any], secret: str) -> httpx.Response:
    """One call with the key where the endpoint's SDK puts it."""
    header = {"x-api-key": secret} if path.startswith("/v1/messages") else None
    return http.post(path, json=body, headers=header or {"authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("name", list(CALLS))
def test_unpriced_call_is_flagged_not_zero(
    name: str,
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
    db_path: Path,
) -> None:
    path, body = CALLS[name]
    key = new_key(api)
    up.script(Metered(TOKENS), path=path)
    response = post(http, path, body, key["key"])
    assert response.status_code == 200, response.text
    if not body.get("stream"):
        assert response.headers["x-tollway-cost-usd"] == "unknown"

    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["unpriced_requests"] == 1
    assert report["totals"]["input_tokens"] == TOKENS.input
    assert report["totals"]["output_tokens"] == TOKENS.output
    [row] = spend_rows(db_path, "request_id = ?", response.headers["x-request-id"])
    assert bool(row["priced"]) is False
    assert Decimal(str(row["cost_usd"])) == 0
    assert row["status"] == 200


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("budget_on", ["key", "project"])
def test_budgeted_key_refuses_unpriced_model(
    name: str,
    budget_on: str,
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
) -> None:
    path, body = CALLS[name]
    if budget_on == "key":
        key = new_key(api, max_budget_usd=budget(100))
    else:
        project = new_project(api, max_budget_usd=budget(100), budget_period="day")
        key = new_key(api, project=project["name"])
    response = post(http, path, body, key["key"])
    if path == "/v1/messages":
        error = anthropic_error(response, 403)
        assert error["type"] == "permission_error"
    else:
        error = openai_error(response, 403)
        assert error["code"] == "price_unknown"
        assert error["param"] == "model"
    message = error["message"]
    assert "No price is known" in message
    assert body["model"] in message
    assert "price:" in message and "input_mtok" in message and "output_mtok" in message
    assert up.requests == [], "a refused call must not reach the upstream"
    report = wait_for_requests(api, 1, key=key["id"])
    assert Decimal(report["totals"]["cost_usd"]) == 0


def test_unpriced_call_without_usage_is_still_flagged(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    """No usage and no price: still 'unknown', never a $0 that looks priced."""
    key = new_key(api)
    up.script(Metered(TOKENS, no_usage=True), path="/v1/chat/completions")
    response = post(http, *CALLS["chat"], key["key"])
    assert response.status_code == 200
    report = wait_for_requests(api, 1, key=key["id"])
    assert report["totals"]["unpriced_requests"] == 1
    assert response.headers["x-tollway-cost-usd"] == "unknown"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_call_without_upstream_usage_is_estimated(
    stream: bool,
    mgw: GatewayServer,
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
    db_path: Path,
) -> None:
    """An upstream that reports no usage (an OpenAI-compatible server that ignores
    stream_options, or omits usage) is metered by estimate, never as 0 tokens and $0:
    otherwise every such call would settle a budget's reservation to nothing."""
    key = new_key(api, max_budget_usd=budget(25))
    up.script(Metered(Tokens(input=17, output=10), no_usage=True), path="/v1/chat/completions")
    body = {"model": DOLLAR_GPT, "messages": MESSAGES, "max_tokens": 10, "stream": stream}
    response = post(http, "/v1/chat/completions", body, key["key"])
    assert response.status_code == 200
    wait_for_requests(api, 1, key=key["id"])
    [row] = spend_rows(db_path, "request_id = ?", response.headers["x-request-id"])
    assert bool(row["estimated"]) is True
    assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    # One UNIT per output token, input free: the estimate is priced like real usage.
    assert Decimal(str(row["cost_usd"])) == units(row["output_tokens"])
