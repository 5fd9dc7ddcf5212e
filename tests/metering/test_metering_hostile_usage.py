"""What an upstream reports as usage is validated, never priced as given.

Absurd (10**19), negative, fractional or textual counts, and cache counts larger than the
input they are part of, make the usage invalid: the call is answered as usual, its record
is flagged ``usage_invalid`` and estimated, its cost comes from the gateway's own count,
and a warning names the provider. A budget is never credited by a negative count, and no
such record can stop the spend writer.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from metering_support import (
    HOUSE_CLAUDE,
    HOUSE_GPT,
    MESSAGES,
    Metered,
    MeteredUpstream,
    budget,
    new_key,
    spend,
    spend_rows,
    wait_for_requests,
)

BAD_OPENAI: list[tuple[str, dict[str, Any]]] = [
    ("absurd", {"prompt_tokens": 10**19, "completion_tokens": 5}),
    ("negative", {"prompt_tokens": -1_000_000, "completion_tokens": 5}),
    ("text", {"prompt_tokens": "100", "completion_tokens": "5"}),
    ("fraction", {"prompt_tokens": 12.5, "completion_tokens": 5}),
    ("boolean", {"prompt_tokens": True, "completion_tokens": 5}),
    ("cached-beyond-input", {"prompt_tokens": 10, "completion_tokens": 5,
                             "prompt_tokens_details": {"cached_tokens": 50}}),
    ("past-the-bound", {"prompt_tokens": 10_000_001, "completion_tokens": 5}),
]  # fmt: skip
BAD_ANTHROPIC: list[tuple[str, dict[str, Any]]] = [
    ("absurd", {"input_tokens": 10, "output_tokens": 10**19}),
    ("negative", {"input_tokens": 10, "output_tokens": -7}),
    ("text", {"input_tokens": 10, "output_tokens": "lots"}),
    ("fraction", {"input_tokens": 10, "output_tokens": 3.5}),
]


def _post(http: httpx.Client, path: str, body: dict[str, Any], secret: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}", "x-api-key": secret}
    return http.post(path, json=body, headers=headers)


def _check_record(
    api: httpx.Client, db_path: Path, key_id: str, response: httpx.Response
) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    wait_for_requests(api, 1, key=key_id)
    [row] = spend_rows(db_path, "request_id = ?", response.headers["x-request-id"])
    assert row["flags"] == "usage_invalid"
    assert bool(row["estimated"]) is True
    assert 0 < row["input_tokens"] < 1000
    assert 0 <= row["output_tokens"] < 1000
    cost = Decimal(str(row["cost_usd"]))
    assert Decimal(0) < cost < Decimal("0.01")  # a few hundred tokens at the house price
    return row


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("name", "usage"), BAD_OPENAI, ids=[n for n, _ in BAD_OPENAI])
def test_invalid_openai_usage_is_estimated_and_flagged(
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    stream: bool,
    name: str,
    usage: dict[str, Any],
) -> None:
    key = new_key(api, max_budget_usd=budget(100))
    up.script(Metered(raw_usage=usage), path="/v1/chat/completions")
    body = {"model": HOUSE_GPT, "messages": MESSAGES, "max_tokens": 50, "stream": stream}
    with caplog.at_level(logging.WARNING, logger="tollway.metering"):
        response = _post(http, "/v1/chat/completions", body, key["key"])
        _check_record(api, db_path, key["id"], response)
    warnings = [r for r in caplog.records if "invalid usage" in r.getMessage()]
    assert warnings, "no warning was logged"
    assert warnings[0].__dict__["fields"]["provider"] == "oa"
    # The budget was charged the estimate: never credited, never the absurd amount.
    shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    assert Decimal(0) < Decimal(shown["lifetime"]) < Decimal("0.01")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("name", "usage"), BAD_ANTHROPIC, ids=[n for n, _ in BAD_ANTHROPIC])
def test_invalid_anthropic_usage_is_estimated_and_flagged(
    up: MeteredUpstream,
    api: httpx.Client,
    http: httpx.Client,
    db_path: Path,
    stream: bool,
    name: str,
    usage: dict[str, Any],
) -> None:
    key = new_key(api, max_budget_usd=budget(100))
    up.script(Metered(raw_usage=usage), path="/v1/messages")
    body = {"model": HOUSE_CLAUDE, "messages": MESSAGES, "max_tokens": 50, "stream": stream}
    response = _post(http, "/v1/messages", body, key["key"])
    _check_record(api, db_path, key["id"], response)


def test_invalid_usage_does_not_stop_other_records(
    up: MeteredUpstream, api: httpx.Client, http: httpx.Client, db_path: Path
) -> None:
    """An absurd count next to ordinary calls: every record lands."""
    key = new_key(api)
    up.script(Metered(raw_usage={"prompt_tokens": 10**19, "completion_tokens": 10**19}))
    body = {"model": HOUSE_GPT, "messages": MESSAGES, "max_tokens": 5}
    ids = [_post(http, "/v1/chat/completions", body, key["key"]).headers["x-request-id"]]
    for _ in range(3):
        up.script(Metered())
        ids.append(_post(http, "/v1/chat/completions", body, key["key"]).headers["x-request-id"])
    report = wait_for_requests(api, 4, key=key["id"])
    assert report["totals"]["requests"] == 4
    rows = spend_rows(db_path, f"request_id IN ({','.join('?' * len(ids))})", *ids)
    assert {row["request_id"] for row in rows} == set(ids)
    assert [row["flags"] for row in rows].count("usage_invalid") == 1
    assert spend(api, key=key["id"])["totals"]["estimated_requests"] == 1
