"""A budgeted call that sets no output limit is sent the limit its hold assumed.

Otherwise the upstream's own default (up to the model's maximum output) could cost more
than the hold, and concurrent calls could spend past the budget.
"""

from __future__ import annotations

import httpx
from metering_support import (
    HOUSE_CLAUDE,
    HOUSE_GPT,
    MESSAGES,
    Metered,
    MeteredUpstream,
    budget,
    new_key,
)

from harness import GatewayServer


def test_budgeted_calls_get_the_assumed_limit(
    mgw: GatewayServer, up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    assumed = mgw.settings.default_max_output_tokens
    key = new_key(api, max_budget_usd=budget(1_000_000))
    headers = {"authorization": f"Bearer {key['key']}"}
    up.script(Metered(), persistent=True)
    chat = http.post("/v1/chat/completions", json={"model": HOUSE_GPT, "messages": MESSAGES},
                     headers=headers)  # fmt: skip
    assert chat.status_code == 200, chat.text
    assert up.last().body["max_completion_tokens"] == assumed
    response = http.post("/v1/responses", json={"model": HOUSE_GPT, "input": "Hi"}, headers=headers)
    assert response.status_code == 200, response.text
    assert up.last().body["max_output_tokens"] == assumed
    claude = {"model": HOUSE_CLAUDE, "messages": MESSAGES}
    translated = http.post("/v1/chat/completions", json=claude, headers=headers)
    assert translated.status_code == 200, translated.text
    assert up.last().body["max_tokens"] == assumed
    # A limit the client set is left alone.
    small = {"model": HOUSE_GPT, "messages": MESSAGES, "max_tokens": 7}
    assert http.post("/v1/chat/completions", json=small, headers=headers).status_code == 200
    assert up.last().body["max_tokens"] == 7
    assert "max_completion_tokens" not in up.last().body


def test_unbudgeted_calls_are_left_as_sent(
    up: MeteredUpstream, api: httpx.Client, http: httpx.Client
) -> None:
    key = new_key(api)
    up.script(Metered())
    chat = http.post("/v1/chat/completions", json={"model": HOUSE_GPT, "messages": MESSAGES},
                     headers={"authorization": f"Bearer {key['key']}"})  # fmt: skip
    assert chat.status_code == 200
    assert "max_completion_tokens" not in up.last().body
