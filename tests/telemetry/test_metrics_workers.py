"""``/metrics`` of ``tollway serve --workers 2``: known traffic, exact values.

The gateway is the real thing in a subprocess (SQLite, two uvicorn workers) in front of
the scripted fake upstream. The test sends successes (until both workers have served
some), a stream, an Anthropic call, an upstream failure, a call saved by its fallback,
a budget refusal and rate-limit refusals, then scrapes one worker and finds every
worker's counts summed; budgets come from the database at scrape time. Last, one
worker is killed: its calls stay counted, its live gauges go.
"""

from __future__ import annotations

import math
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from metrics_support import (
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    PRIMARY,
    PRIMARY_UPSTREAM,
    SOLO,
    SOLO_UPSTREAM,
    Samples,
    bearer,
    chat,
    created,
    eventually,
    launch,
    management,
    management_error,
    message,
    scrape,
    total,
    value,
)

from fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, Fail, FakeUpstream
from served import ServedGateway

CHAT = "chat.completions"
GPT_COST = (PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2) / 1_000_000
CLAUDE_COST = (PROMPT_TOKENS * 3 + COMPLETION_TOKENS * 5) / 1_000_000
_PID = re.compile(r"_(\d+)\.db$")


@dataclass
class Traffic:
    """What the test sent, as the client saw it."""

    alpha_key: str
    admin_key: str
    virtual_key: str
    gpt_ok: int = 0  # non-streamed GPT successes of project alpha
    limited_ok: int = 0
    limited_refused: int = 0


def _pids(run: Path, prefix: str) -> set[int]:
    return {
        int(found.group(1))
        for path in run.glob(prefix + "*.db")
        if (found := _PID.search(path.name))
    }


def _run_dir(gateway: ServedGateway) -> Path:
    runs = list((gateway.data_dir / "metrics").glob("run-*"))
    assert len(runs) == 1, runs  # one run of tollway serve, the stale ones removed
    return runs[0]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """The fake upstream of this module's gateway."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """Two workers on SQLite; a run directory from a dead earlier run waits to be cleaned."""
    tmp = tmp_path_factory.mktemp("metrics-workers")
    stale = tmp / "data" / "metrics" / "run-stale"
    stale.mkdir(parents=True)
    (stale / "owner.lock").touch()
    (stale / "counter_1.db").write_bytes(b"left by a killed run")
    served = launch(tmp, upstream, workers=2)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def traffic(gateway: ServedGateway, upstream: FakeUpstream) -> Traffic:
    """Send the module's traffic once; every test checks a part of what it left."""
    url = gateway.url
    with management(url) as api:
        alpha = created(api.post("/projects", json={"name": "alpha", "max_budget_usd": "10"}))
        tight = created(api.post("/projects", json={"name": "tight", "max_budget_usd": "0.000001"}))
        limited = created(api.post("/projects", json={"name": "limited"}))
        alpha_key = created(api.post("/keys", json={"name": "a", "project": alpha["id"]}))["key"]
        tight_key = created(api.post("/keys", json={"name": "t", "project": tight["id"]}))["key"]
        limited_key = created(
            api.post("/keys", json={"name": "l", "project": limited["id"], "rpm": 1})
        )["key"]
        admin_key = created(api.post("/admin-keys", json={"name": "scraper", "role": "viewer"}))[
            "key"
        ]
    sent = Traffic(alpha_key, admin_key, alpha_key)
    run = _run_dir(gateway)
    # Successes in parallel batches until both workers have counted some.
    with ThreadPoolExecutor(4) as pool:
        for _ in range(20):
            answers = list(pool.map(lambda _: chat(url, alpha_key), range(4)))
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            sent.gpt_ok += len(answers)
            if eventually(lambda: len(_pids(run, "counter_")) >= 2, timeout=1.5):
                break
    assert len(_pids(run, "counter_")) >= 2, "one worker took every call"
    stream = chat(url, alpha_key, stream=True)
    assert stream.status_code == 200 and "[DONE]" in stream.text
    assert message(url, alpha_key).status_code == 200
    upstream.script(Fail(status=500), match="boom-solo")
    assert chat(url, alpha_key, SOLO, word="boom-solo").status_code == 502
    upstream.script(Fail(status=500), match="boom-primary")
    assert chat(url, alpha_key, PRIMARY, word="boom-primary").status_code == 200
    assert chat(url, tight_key).status_code == 402
    # rpm=1 per worker (no Redis): of three calls in a minute, one is refused.
    while not sent.limited_refused and sent.limited_ok < 6:
        status = chat(url, limited_key).status_code
        assert status in (200, 429)
        sent.limited_ok += status == 200
        sent.limited_refused += status == 429
    return sent


def _settled(gateway: ServedGateway, traffic: Traffic) -> Samples:
    """A scrape once every worker has written what its calls added (within a second)."""
    # + a stream, a message, a failure, a fallback, a budget refusal
    calls = traffic.gpt_ok + 5 + traffic.limited_ok + traffic.limited_refused
    found: list[Samples] = []

    def complete() -> bool:
        found[:] = [scrape(gateway.url, bearer(MASTER_KEY))]
        return total(found[0], "tollway_requests_total") == calls

    assert eventually(complete), total(found[0], "tollway_requests_total")
    return found[0]


def test_calls_are_counted_across_workers(gateway: ServedGateway, traffic: Traffic) -> None:
    samples = _settled(gateway, traffic)
    requests = "tollway_requests_total"
    gpt_served = traffic.gpt_ok + 1 + traffic.limited_ok  # + the stream
    assert value(samples, requests, endpoint=CHAT, model=GPT, provider="oa", status="200") == (
        gpt_served
    )
    assert (
        value(samples, requests, endpoint="messages", model=CLAUDE, provider="an", status="200")
        == 1
    )
    assert value(samples, requests, endpoint=CHAT, model=SOLO, provider="oa", status="502") == 1
    assert value(samples, requests, endpoint=CHAT, model=PRIMARY, provider="oa", status="200") == 1
    assert value(samples, requests, endpoint=CHAT, model=GPT, provider="_none", status="402") == 1
    assert value(samples, requests, endpoint=CHAT, model=GPT, provider="_none", status="429") == (
        traffic.limited_refused
    )
    duration = "tollway_request_duration_seconds_count"
    assert total(samples, duration) == total(samples, requests)
    assert value(samples, duration, endpoint=CHAT, model=GPT, provider="oa") == gpt_served
    ttft = "tollway_time_to_first_token_seconds_count"
    assert value(samples, ttft, endpoint=CHAT, model=GPT, provider="oa") == 1
    assert total(samples, ttft) == 1
    assert value(samples, "tollway_requests_in_flight") == 0


def test_tokens_and_cost_per_project(gateway: ServedGateway, traffic: Traffic) -> None:
    samples = _settled(gateway, traffic)
    tokens = "tollway_tokens_total"
    alpha_gpt = traffic.gpt_ok + 1  # + the stream
    for project, calls in (("alpha", alpha_gpt), ("limited", traffic.limited_ok)):
        labels = {"model": GPT, "provider": "oa", "project": project}
        assert value(samples, tokens, type="input", **labels) == PROMPT_TOKENS * calls
        assert value(samples, tokens, type="output", **labels) == COMPLETION_TOKENS * calls
        cost = value(samples, "tollway_cost_usd_total", **labels)
        assert math.isclose(cost, GPT_COST * calls, rel_tol=1e-9), (project, cost)
    fallback = {"model": PRIMARY, "provider": "oa", "project": "alpha"}
    assert value(samples, tokens, type="input", **fallback) == PROMPT_TOKENS
    claude = {"model": CLAUDE, "provider": "an", "project": "alpha"}
    assert value(samples, tokens, type="output", **claude) == COMPLETION_TOKENS
    assert math.isclose(value(samples, "tollway_cost_usd_total", **claude), CLAUDE_COST)
    assert total(samples, tokens, type="cache_read") == 0
    assert total(samples, "tollway_unpriced_requests_total") == 0
    # The OpenTelemetry form: one observation per metered call and token type.
    usage = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": GPT_UPSTREAM,
    }
    served = alpha_gpt + traffic.limited_ok + 1  # + the fallback's answer
    count = "gen_ai_client_token_usage_count"
    assert value(samples, count, gen_ai_token_type="input", **usage) == served
    assert value(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **usage) == (
        PROMPT_TOKENS * served
    )
    assert (
        value(
            samples,
            count,
            gen_ai_operation_name="chat",
            gen_ai_provider_name="anthropic",
            gen_ai_request_model=CLAUDE_UPSTREAM,
            gen_ai_token_type="output",
        )
        == 1
    )


def test_refusals_attempts_retries_fallbacks(gateway: ServedGateway, traffic: Traffic) -> None:
    samples = _settled(gateway, traffic)
    assert value(samples, "tollway_budget_refusals_total", model=GPT, project="tight") == 1
    assert total(samples, "tollway_budget_refusals_total") == 1
    assert traffic.limited_refused >= 1
    assert value(samples, "tollway_rate_limit_refusals_total", model=GPT, project="limited") == (
        traffic.limited_refused
    )
    attempts = "tollway_upstream_attempts_total"
    ok = traffic.gpt_ok + 1 + traffic.limited_ok + 1  # + the stream, + the fallback's answer
    assert value(samples, attempts, model=GPT, provider="oa", outcome="ok") == ok
    assert value(samples, attempts, model=CLAUDE, provider="an", outcome="ok") == 1
    assert value(samples, attempts, model=SOLO, provider="oa", outcome="error") == 1
    assert value(samples, attempts, model=PRIMARY, provider="oa", outcome="error") == 1
    assert total(samples, attempts) == ok + 3
    assert value(samples, "tollway_retries_total", model=GPT, provider="oa") == 1
    assert total(samples, "tollway_retries_total") == 1
    assert value(samples, "tollway_fallbacks_total", model=PRIMARY, provider="oa") == 1
    assert total(samples, "tollway_fallbacks_total") == 1
    failed = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": SOLO_UPSTREAM,
        "error_type": "upstream_error",
    }
    assert value(samples, "gen_ai_client_operation_duration_seconds_count", **failed) == 1
    assert total(samples, "gen_ai_client_operation_duration_seconds_count") == ok + 3


def test_breakers_open_in_one_worker_show_open(gateway: ServedGateway, traffic: Traffic) -> None:
    samples = _settled(gateway, traffic)
    circuit = "tollway_circuit_open"
    assert value(samples, circuit, deployment=f"oa/{SOLO_UPSTREAM}") == 1
    assert value(samples, circuit, deployment=f"oa/{PRIMARY_UPSTREAM}") == 1
    assert value(samples, circuit, deployment=f"oa/{GPT_UPSTREAM}") == 0
    assert value(samples, circuit, deployment=f"an/{CLAUDE_UPSTREAM}") == 0


def test_budgets_and_spend_records_from_the_database(
    gateway: ServedGateway, traffic: Traffic
) -> None:
    _settled(gateway, traffic)
    with management(gateway.url) as api:
        report = api.get("/spend", params={"project": "alpha"})
    assert report.status_code == 200, report.text
    recorded = Decimal(str(report.json()["totals"]["cost_usd"]))
    assert recorded > 0
    samples = scrape(gateway.url, bearer(MASTER_KEY))
    spent = value(samples, "tollway_budget_spent_usd", project="alpha")
    assert math.isclose(spent, float(recorded), rel_tol=1e-9), (spent, recorded)
    assert value(samples, "tollway_budget_limit_usd", project="alpha") == 10
    assert value(samples, "tollway_budget_held_usd", project="alpha") == 0
    assert value(samples, "tollway_budget_limit_usd", project="tight") == 0.000001
    assert value(samples, "tollway_budget_spent_usd", project="tight") == 0
    # Projects without a budget have no budget series.
    assert total(samples, "tollway_budget_limit_usd", project="limited") == 0
    assert not any(
        name == "tollway_budget_limit_usd" and ("project", "limited") in labels
        for name, labels in samples
    )
    assert value(samples, "tollway_spend_journal_pending") == 0
    assert value(samples, "tollway_spend_flush_failing") == 0
    assert value(samples, "tollway_spend_quarantined", store="database") == 0
    assert value(samples, "tollway_spend_quarantined", store="file") == 0
    assert total(samples, "tollway_store_errors_total") == 0


def test_no_series_names_a_virtual_key(gateway: ServedGateway, traffic: Traffic) -> None:
    samples = _settled(gateway, traffic)
    for _, labels in samples:
        assert not any(name == "key" or name.startswith("key_") for name, _ in labels)
        assert not any(value.startswith("key_") or "sk-tw" in value for _, value in labels)


def test_only_the_master_key_or_an_admin_key_reads_it(
    gateway: ServedGateway, traffic: Traffic
) -> None:
    import httpx

    url = gateway.url + "/metrics"
    with httpx.Client(timeout=10.0) as client:
        error = management_error(client.get(url), 401)
        assert error["type"] == "authentication_error"
        assert client.get(url).headers["www-authenticate"] == "Bearer"
        for refused in (
            bearer("sk-tw-master-not-the-one"),
            bearer(traffic.virtual_key),  # a virtual key, even a working one
            {"x-api-key": MASTER_KEY},  # only as a Bearer token
            {"authorization": f"Basic {MASTER_KEY}"},
            bearer("sk-tw-admin-" + "x" * 43),
        ):
            management_error(client.get(url, headers=refused), 401)
        assert client.get(url, headers=bearer(MASTER_KEY)).status_code == 200
        assert client.get(url, headers=bearer(traffic.admin_key)).status_code == 200
        management_error(client.post(url, headers=bearer(MASTER_KEY)), 405)
    with management(gateway.url) as api:
        keys = api.get("/admin-keys").json()
        scraper = next(k for k in keys if k["name"] == "scraper")
        assert api.delete(f"/admin-keys/{scraper['id']}").status_code == 200
    with httpx.Client(timeout=10.0) as client:
        management_error(client.get(url, headers=bearer(traffic.admin_key)), 401)


def test_the_run_directory_replaced_a_dead_one(gateway: ServedGateway, traffic: Traffic) -> None:
    run = _run_dir(gateway)
    assert run.name != "run-stale"
    assert (run / "owner.lock").exists()
    assert oct(run.stat().st_mode & 0o777) == "0o700"


def test_a_dead_worker_keeps_its_counts_and_loses_its_gauges(
    gateway: ServedGateway, traffic: Traffic
) -> None:
    before = _settled(gateway, traffic)
    run = _run_dir(gateway)
    workers = _pids(run, "gauge_live")
    assert len(workers) == 2, workers
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    # The serving process drops the dead worker's live gauges within a second or so.
    assert eventually(lambda: victim not in _pids(run, "gauge_live"), timeout=10)
    assert victim in _pids(run, "counter_")
    after = scrape(gateway.url, bearer(MASTER_KEY))
    for name in ("tollway_requests_total", "tollway_tokens_total", "tollway_cost_usd_total"):
        assert math.isclose(total(after, name), total(before, name)), name
    assert value(after, "tollway_requests_in_flight") == 0
    assert value(after, "tollway_circuit_open", deployment=f"oa/{GPT_UPSTREAM}") == 0
