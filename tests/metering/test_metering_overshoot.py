"""Budgets never overshoot, even when the upstream counts more than any estimate.

A prompt of 400 dots is about 27 tokens to the gateway's tokenizer; the upstream here
bills 4x that for every call. Holds are a provable bound of the input (the body's bytes
plus a fixed allowance), never a tokenizer estimate, so 48 concurrent clients hammering
one budget spend at most the budget, and stop short of it by less than one call's hold.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import orjson
from metering_support import (
    CENT_GPT,
    Metered,
    MeteredUpstream,
    Tokens,
    budget,
    new_key,
    spend,
    units,
)

from tollway.metering.estimates import input_bound
from tollway.metering.tokens import TokenCounter

PROMPT = "." * 400
MAX_TOKENS = 10
CLIENTS = 48


def _body() -> dict[str, Any]:
    return {
        "model": CENT_GPT,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }


async def test_upstream_billing_4x_the_estimate_cannot_overspend(
    up: MeteredUpstream, api: httpx.Client, ahttp: httpx.AsyncClient
) -> None:
    estimate = TokenCounter().count_request(_body())
    assert estimate < 40  # dots merge: the tokenizer sees few tokens
    billed = Tokens(input=4 * estimate, output=MAX_TOKENS)
    up.script(Metered(billed, delay=0.02), path="/v1/chat/completions", persistent=True)
    limit = units(5000)
    key = new_key(api, max_budget_usd=budget(5000))
    headers = {"authorization": f"Bearer {key['key']}"}

    async def client() -> list[int]:
        statuses = []
        while True:
            response = await ahttp.post("/v1/chat/completions", json=_body(), headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                return statuses

    results = await asyncio.gather(*(client() for _ in range(CLIENTS)))
    statuses = [status for statuses in results for status in statuses]
    assert set(statuses) <= {200, 402}, statuses
    served = statuses.count(200)
    spent = Decimal(spend(api, key=key["id"])["totals"]["cost_usd"])
    per_call = units(billed.input + billed.output)
    assert spent == per_call * served
    assert spent <= limit
    # Refusals start only when less than one call's hold is left.
    hold = units(input_bound(_body(), orjson.dumps(_body())) + MAX_TOKENS)
    assert limit - spent < hold
    assert served >= 30
