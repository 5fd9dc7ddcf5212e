"""The response cache on the real proxy: hit and miss, tenant isolation, stream replay,
Cache-Control, TTLs, metering of hits (tokens kept, no cost, no budget), memory and Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from fake_upstream import FakeUpstream, Reply
from harness import (
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    GatewayServer,
    gateway_settings,
    running_gateway,
)

PRICE = {"input_mtok": "1000", "output_mtok": "2000"}  # $0.001 / $0.002 per token
ASK: Any = [{"role": "user", "content": "What is the capital of France?"}]
SHORT = "gpt-short-ttl"


def _settings(
    fake: FakeUpstream, data: Path, extra: dict[str, Any] | None = None, **cache: Any
) -> Any:
    events = data / "events.jsonl"
    return gateway_settings(
        fake,
        data,
        **(extra or {}),
        cache={"enabled": True, **cache},
        events={"file": str(events)},
        models=[
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM, "price": PRICE},
            {"name": SHORT, "provider": "oa", "model": GPT_UPSTREAM, "cache_ttl": 1},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM, "price": PRICE},
        ],
    )


@pytest.fixture(scope="module")
def cached(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    with running_gateway(_settings(fake_server, tmp_path_factory.mktemp("cached"))) as server:
        yield server


@pytest.fixture
def gw(cached: GatewayServer, fake: FakeUpstream) -> GatewayServer:
    return cached


class Tenant:
    """A project with one key (and an optional budget) on the gateway."""

    def __init__(self, gw: GatewayServer, budget: str | None = None) -> None:
        self.admin = httpx.Client(
            base_url=gw.url + "/api/v1", headers={"authorization": f"Bearer {MASTER_KEY}"}
        )
        name = f"cache-{uuid.uuid4().hex[:10]}"
        self.project = self.admin.post("/projects", json={"name": name}).json()["id"]
        body: dict[str, Any] = {"name": name, "project": self.project}
        if budget is not None:
            body["max_budget_usd"] = budget
        created = self.admin.post("/keys", json=body).json()
        self.key, self.key_id = created["key"], created["id"]
        self.oai = openai.OpenAI(base_url=gw.url + "/v1", api_key=self.key, max_retries=0)

    def spent(self) -> Decimal:
        report = self.admin.get("/spend", params={"key": self.key_id}).json()
        return Decimal(str(report["totals"]["cost_usd"]))


def _event(gw: GatewayServer, request_id: str) -> dict[str, Any]:
    path = gw.settings.data_dir / "events.jsonl"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_bytes().splitlines():
                event = orjson.loads(line)
                if (
                    event["type"] == "request.completed"
                    and event["data"]["request_id"] == request_id
                ):
                    return dict(event["data"])
        time.sleep(0.05)
    raise AssertionError(f"no event for {request_id}")


def _ask(client: openai.OpenAI, question: Any = ASK, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=GPT, messages=question, temperature=0, **extra
    )


def test_second_identical_call_is_a_hit(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    first = _ask(tenant.oai)
    second = _ask(tenant.oai)
    assert first.headers["x-tollway-cache"] == "miss"
    assert second.headers["x-tollway-cache"] == "hit"
    assert len(fake.requests) == 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage == first.parse().usage  # tokens kept
    assert Decimal(second.headers["x-tollway-cost-usd"]) == 0
    event = _event(gw, second.headers["x-request-id"])
    assert event["cached"] is True and Decimal(event["cost_usd"]) == 0
    assert event["input_tokens"] == first.parse().usage.prompt_tokens
    assert event["output_tokens"] == first.parse().usage.completion_tokens


def test_hits_are_not_charged_against_budgets(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw, budget="10")
    # An output limit of the client's own: one the gateway adds for a budget is not kept.
    _ask(tenant.oai, max_tokens=50)
    deadline = time.monotonic() + 5
    while tenant.spent() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    once = tenant.spent()
    assert once > 0
    for _ in range(3):
        assert _ask(tenant.oai, max_tokens=50).headers["x-tollway-cache"] == "hit"
    time.sleep(0.3)
    assert tenant.spent() == once


def test_projects_never_share_answers(gw: GatewayServer, fake: FakeUpstream) -> None:
    one, two = Tenant(gw), Tenant(gw)
    assert _ask(one.oai).headers["x-tollway-cache"] == "miss"
    assert _ask(two.oai).headers["x-tollway-cache"] == "miss"
    assert _ask(one.oai).headers["x-tollway-cache"] == "hit"
    assert len(fake.requests) == 2


def test_a_different_request_misses(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    _ask(tenant.oai)
    other = [{"role": "user", "content": "What is the capital of Spain?"}]
    assert _ask(tenant.oai, other).headers["x-tollway-cache"] == "miss"
    assert _ask(tenant.oai, max_tokens=7).headers["x-tollway-cache"] == "miss"
    assert len(fake.requests) == 3


def test_sampled_calls_are_not_cached(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    for _ in range(2):
        raw = tenant.oai.chat.completions.with_raw_response.create(model=GPT, messages=ASK)
        assert "x-tollway-cache" not in raw.headers
    assert len(fake.requests) == 2


def test_stream_cached_and_replayed_as_a_stream(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    fake.script(Reply(words=("Paris", " is", " the", " capital.")))
    first = tenant.oai.chat.completions.with_raw_response.create(
        model=GPT, messages=ASK, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    first_chunks = list(first.parse())
    again = tenant.oai.chat.completions.with_raw_response.create(
        model=GPT, messages=ASK, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    assert again.headers["x-tollway-cache"] == "hit"
    assert again.headers["content-type"].startswith("text/event-stream")
    chunks = list(again.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Paris is the capital."
    assert chunks[-1].usage == first_chunks[-1].usage
    # The same entry answers a call that does not stream, and one without usage chunks.
    whole = _ask(tenant.oai)
    assert whole.headers["x-tollway-cache"] == "hit"
    assert whole.parse().choices[0].message.content == "Paris is the capital."
    plain = tenant.oai.chat.completions.create(model=GPT, messages=ASK, temperature=0, stream=True)
    assert all(c.usage is None for c in plain)
    assert len(fake.requests) == 1


def test_anthropic_stream_replayed_faithfully(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    client = anthropic.Anthropic(base_url=gw.url, api_key=tenant.key, max_retries=0)
    finals = []
    for _ in range(2):
        with client.messages.stream(
            model=CLAUDE, max_tokens=50, messages=ASK, extra_body={"temperature": 0}
        ) as events:
            kinds = [event.type for event in events]
            finals.append(events.get_final_message())
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert finals[1].content == finals[0].content
    assert finals[1].usage.output_tokens == finals[0].usage.output_tokens
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("directive", "stored"), [("no-cache", True), ("no-store", False), ("max-age=0", True)]
)
def test_cache_control_is_honoured(
    gw: GatewayServer, fake: FakeUpstream, directive: str, stored: bool
) -> None:
    tenant = Tenant(gw)
    _ask(tenant.oai)
    fresh = _ask(tenant.oai, extra_headers={"cache-control": directive})
    assert fresh.headers.get("x-tollway-cache") in ("miss", None)
    assert len(fake.requests) == 2
    # no-cache still keeps the fresh answer; no-store kept nothing (the old one remains).
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "hit"
    assert len(fake.requests) == 2


def test_model_ttl_expires_entries(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    for expected in ("miss", "hit"):
        raw = tenant.oai.chat.completions.with_raw_response.create(
            model=SHORT, messages=ASK, temperature=0
        )
        assert raw.headers["x-tollway-cache"] == expected
    time.sleep(1.2)
    raw = tenant.oai.chat.completions.with_raw_response.create(
        model=SHORT, messages=ASK, temperature=0
    )
    assert raw.headers["x-tollway-cache"] == "miss"


def test_project_can_turn_the_cache_off(gw: GatewayServer, fake: FakeUpstream) -> None:
    tenant = Tenant(gw)
    patched = tenant.admin.patch(
        f"/projects/{tenant.project}", json={"cache": {"enabled": False, "ttl": 60}}
    )
    assert patched.status_code == 200, patched.text
    for _ in range(2):
        assert "x-tollway-cache" not in _ask(tenant.oai).headers
    assert len(fake.requests) == 2


def test_failed_answers_are_not_cached(gw: GatewayServer, fake: FakeUpstream) -> None:
    from fake_upstream import Fail

    tenant = Tenant(gw)
    fake.script(Fail(500))
    with pytest.raises(openai.InternalServerError):
        _ask(tenant.oai)
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "miss"


def test_off_by_default_and_opt_in_per_project(fake_server: FakeUpstream, tmp_path: Path) -> None:
    settings = gateway_settings(fake_server, tmp_path)  # no cache section: off
    fake_server.reset()
    with running_gateway(settings) as gw:
        tenant = Tenant(gw)
        assert "x-tollway-cache" not in _ask(tenant.oai).headers
        tenant.admin.patch(
            f"/projects/{tenant.project}", json={"cache": {"enabled": True, "ttl": 60}}
        )
        assert _ask(tenant.oai).headers["x-tollway-cache"] == "miss"
        assert _ask(tenant.oai).headers["x-tollway-cache"] == "hit"
    fake_server.reset()


def test_redis_backend_shared_by_two_gateways(
    fake_server: FakeUpstream, tmp_path: Path, shared_redis_url: str
) -> None:
    prefix = f"tollway-test-{uuid.uuid4().hex[:8]}:"
    extra = {"redis_url": shared_redis_url, "redis_prefix": prefix}
    settings = _settings(fake_server, tmp_path, extra, backend="redis", shared=True)
    fake_server.reset()
    try:
        with running_gateway(settings) as one, running_gateway(settings) as two:
            a = openai.OpenAI(base_url=one.url + "/v1", api_key=MASTER_KEY, max_retries=0)
            b = openai.OpenAI(base_url=two.url + "/v1", api_key=MASTER_KEY, max_retries=0)
            assert _ask(a).headers["x-tollway-cache"] == "miss"
            assert _ask(b).headers["x-tollway-cache"] == "hit"
            assert len(fake_server.requests) == 1
    finally:
        import redis

        client = redis.Redis.from_url(shared_redis_url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
        fake_server.reset()


def test_budgeted_answers_are_kept_when_the_model_ended_them(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    """No max_tokens on a budgeted key: the gateway adds one; a whole answer is kept."""
    tenant = Tenant(gw, budget="1000")
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "miss"
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "hit"
    assert len(fake.requests) == 1


def test_answers_cut_at_an_added_limit_are_not_kept(gw: GatewayServer, fake: FakeUpstream) -> None:
    from fake_upstream import Respond

    cut = {
        "id": "chatcmpl-cut",
        "object": "chat.completion",
        "created": 1,
        "model": GPT_UPSTREAM,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    tenant = Tenant(gw, budget="1000")
    fake.script(Respond(body=orjson.dumps(cut)))
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "miss"
    assert _ask(tenant.oai).headers["x-tollway-cache"] == "miss"
    assert len(fake.requests) == 2
