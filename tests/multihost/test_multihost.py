"""Two hosts on one PostgreSQL and one Redis, behind a load balancer, answer as one host.

Every host is a real ``tollway serve`` in a network namespace of its own, reached over a
veth link (see ``conftest.py``). The same script of budgets, rate limits, revocation,
kill switches and spend reports runs once against host ``a`` alone and once through
HAProxy, which spreads it over both hosts: the two transcripts must be equal, and equal
to what one host is expected to answer. Then a host is killed (SIGKILL) in the middle of
a load: clients that retry see every call succeed, and no spend record is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import redis
from multihost_support import (
    CALL_COST_CENTS,
    CLAUDE,
    CLIENT_TIMEOUT,
    GPT,
    Cluster,
    admin,
    cents,
    created,
    error_code,
    hosts_of,
    request_for,
)

from fake_upstream import FakeUpstream, SlowEvents, Stall

Transcript = list[tuple[Any, ...]]
# What the scenario calls and the spend report counts: 10 budget, 4 rpm, 1 before the
# revocation, 12 with switches (the 4 revoked calls have no spend record).
SCENARIO_CALLS = 10 + 4 + 1 + 12


def post(url: str, index: int, secret: str) -> httpx.Response:
    """Proxy call ``index`` of the mix (see ``request_for``) on a fresh connection."""
    path, body, headers = request_for(index, secret)
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        return client.post(path, json=body, headers=headers)


def burst(url: str, secret: str, count: int) -> list[httpx.Response]:
    """``count`` calls of the mix at once."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: post(url, i, secret), range(count)))


def outcome(responses: list[httpx.Response]) -> tuple[tuple[int, str | None], ...]:
    """Statuses and error codes, in order."""
    return tuple((r.status_code, error_code(r)) for r in responses)


def settled(api: httpx.Client, path: str, done: Callable[[Any], bool], **params: Any) -> Any:
    """``GET path`` until ``done(body)`` (or 15 s): each host writes its records in batches
    and a spend report flushes only the answering host's, so another host's calls of the
    last ~50 ms may be missing from it."""
    deadline = time.monotonic() + 15
    while True:
        response = api.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


@dataclass
class Seen:
    """The hosts that answered each step (through the balancer)."""

    steps: dict[str, set[str]] = field(default_factory=dict)

    def add(self, step: str, responses: list[httpx.Response]) -> None:
        self.steps.setdefault(step, set()).update(hosts_of(responses))


def scenario(url: str, seen: Seen) -> Transcript:
    """Budgets, rate limits, revocation, kill switches and spend, through ``url``; what a
    client and an operator observe, with nothing that differs between runs (no ids)."""
    out: Transcript = []
    with admin(url) as api:
        project = created(api.post("/projects", json={"name": f"scenario-{time.time_ns()}"}))

        def key(**limits: Any) -> dict[str, Any]:
            body = {"name": "scenario", "project": project["id"], **limits}
            return created(api.post("/keys", json=body))

        # A budget of three calls, ten calls at once, both dialects: three answered.
        budgeted = key(max_budget_usd=cents(3 * CALL_COST_CENTS))
        calls = burst(url, budgeted["key"], 10)
        seen.add("budget", calls)
        statuses = sorted(Counter(c.status_code for c in calls).items())
        refusals = sorted({error_code(c) for c in calls if c.status_code == 402}, key=str)
        out.append(("budget", statuses, refusals))
        three = str(Decimal(3 * CALL_COST_CENTS) / 100)
        shown = settled(
            api, f"/keys/{budgeted['id']}", lambda k: k["spend_usd"]["lifetime"] == three
        )
        out.append(("budget spent", shown["spend_usd"]["lifetime"]))

        # Two requests a minute, four calls one after the other.
        limited = key(rpm=2)
        calls = [post(url, 0, limited["key"]) for _ in range(4)]
        seen.add("rpm", calls)
        out.append(
            ("rpm", outcome(calls), [c.headers.get("retry-after") is not None for c in calls])
        )

        # Revoked on one host: refused on every host from the next call on.
        revoked = key()
        before = post(url, 0, revoked["key"])
        out.append(("revoke", before.status_code, api.delete(f"/keys/{revoked['id']}").status_code))
        calls = [post(url, i, revoked["key"]) for i in range(4)]
        seen.add("revoked", calls)
        out.append(("revoked", outcome(calls)))

        # Kill switches: the whole proxy, then one provider (all on again in any case).
        switched = key()
        try:
            out.append(("switch", api.patch("/switches", json={"proxy": False}).json()["proxy"]))
            calls = [post(url, i, switched["key"]) for i in range(4)]
            seen.add("proxy off", calls)
            out.append(("proxy off", outcome(calls)))
            api.patch("/switches", json={"proxy": True, "providers": {"oa": False}})
            calls = [post(url, i, switched["key"]) for i in range(4)]
            seen.add("provider off", calls)
            out.append(("provider off", outcome(calls)))
        finally:
            api.patch("/switches", json={"proxy": True, "providers": {"oa": True}})
        calls = [post(url, i, switched["key"]) for i in range(4)]
        seen.add("back on", calls)
        out.append(("back on", outcome(calls)))

        # The spend report, asked of every host in turn.
        for _ in range(2):
            report = settled(
                api,
                "/spend",
                lambda r: r["totals"]["requests"] >= SCENARIO_CALLS,
                project=project["id"],
                group_by="model",
            )
            totals = report["totals"]
            by_model = {g["group"]: g["requests"] for g in report["groups"]}
            out.append(("spend", totals["requests"], totals["cost_usd"], by_model))
    return out


def expected_transcript() -> Transcript:
    """What one host answers: each dialect's error codes; in the spend report, every call
    but the revoked key's (an unknown caller has no spend) and, with no model, the calls
    refused before their body was read (the proxy's switch)."""
    ok = (200, None)
    cost = Decimal(CALL_COST_CENTS) / 100
    rate_limited = (429, "rate_limit_exceeded")
    by_model = {GPT: 5 + 4 + 1 + 2 + 2, CLAUDE: 5 + 2 + 2, None: 4}
    spend = ("spend", SCENARIO_CALLS, str(cost * 12), by_model)
    return [
        ("budget", [(200, 3), (402, 7)], ["billing_error", "budget_exceeded"]),
        ("budget spent", str(3 * cost)),
        ("rpm", (ok, ok, rate_limited, rate_limited), [False, False, True, True]),
        ("revoke", 200, 200),
        ("revoked", ((401, "invalid_api_key"), (401, "authentication_error")) * 2),
        ("switch", False),
        ("proxy off", ((503, "switched_off"), (503, "overloaded_error")) * 2),
        ("provider off", ((503, "switched_off"), ok) * 2),
        ("back on", (ok, ok) * 2),
        spend,
        spend,
    ]


def test_two_hosts_answer_like_one(fresh: Cluster) -> None:
    one_host = scenario(fresh.hosts["a"].url, Seen())
    assert one_host == expected_transcript()
    seen = Seen()
    two_hosts = scenario(fresh.lb.url, seen)
    assert two_hosts == one_host
    # Every step really was spread over both hosts.
    steps = ("budget", "rpm", "revoked", "proxy off", "provider off", "back on")
    assert seen.steps == {step: {"a", "b"} for step in steps}, seen.steps


# ----------------------------------------------------------------- a host killed mid-load

CLIENTS = 8  # concurrent clients, each making its calls one after the other
CALLS_EACH = 6
ATTEMPTS = 4  # a client's tries per call (on an error a retry would fix)
RETRYABLE = (502, 503, 504)  # what the balancer answers for a host that died under it


@dataclass
class Attempt:
    """One try: the status (None: the connection failed or broke), the error code, the
    host that answered, the gateway's request id."""

    status: int | None
    error: str | None
    host: str | None
    request_id: str | None


@dataclass
class Call:
    """One logical call: its failed tries, and the try that was answered in full."""

    failed: list[Attempt] = field(default_factory=list)
    answered: Attempt | None = None


def complete(path: str, stream: bool, data: bytes) -> bool:
    """The whole answer arrived (a stream up to its end event)."""
    if not stream:
        return True
    end = b"event: message_stop" if path == "/v1/messages" else b"data: [DONE]"
    return end in data


async def call_until_answered(client: httpx.AsyncClient, index: int, secret: str) -> Call:
    """Call ``index`` of the mix (every other pair streamed), retried on the errors a
    retry can fix, like an SDK with retries on."""
    path, body, headers = request_for(index, secret)
    body["stream"] = stream = index % 4 >= 2
    call = Call()
    for _ in range(ATTEMPTS):
        try:
            async with client.stream("POST", path, json=body, headers=headers) as response:
                host = response.headers.get("x-tollway-host")
                request_id = response.headers.get("x-request-id")
                try:
                    data = await response.aread()
                except httpx.TransportError as exc:
                    call.failed.append(Attempt(None, type(exc).__name__, host, request_id))
                    continue
        except httpx.TransportError as exc:
            call.failed.append(Attempt(None, type(exc).__name__, None, None))
            continue
        attempt = Attempt(response.status_code, error_code(response), host, request_id)
        if response.status_code == 200 and complete(path, stream, data):
            call.answered = attempt
            return call
        call.failed.append(attempt)
        if response.status_code not in RETRYABLE:
            return call
    return call


def in_flight_at(fake: FakeUpstream, address: str) -> int:
    """Upstream calls a host has made that are still being answered."""
    return sum(
        1
        for r in fake.requests
        if r.headers.get("host", "").startswith(address + ":")
        and not r.completed
        and r.dropped_at is None
    )


async def spend_rows(database_url: str, key_id: str) -> list[asyncpg.Record]:
    """The key's spend records, straight from PostgreSQL."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT request_id, status, flags, cost_usd FROM spend WHERE key_id = $1", key_id
            )
        )
    finally:
        await conn.close()


async def test_a_host_killed_mid_load_loses_no_spend(fresh: Cluster, fake: FakeUpstream) -> None:
    victim = fresh.hosts["a"]
    with admin(fresh.lb.url) as api:
        key = created(api.post("/keys", json={"name": "load", "max_budget_usd": "1000"}))
    # Calls take a while upstream, so that some are in flight on the victim when it dies;
    # some streams die half sent.
    fake.script(Stall(0.4), path="/v1/chat/completions", persistent=True)
    fake.script(SlowEvents(0.08), path="/v1/messages", persistent=True)

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=fresh.lb.url, timeout=CLIENT_TIMEOUT, limits=limits) as c:

        async def client(number: int) -> list[Call]:
            return [
                await call_until_answered(c, number * CALLS_EACH + i, key["key"])
                for i in range(CALLS_EACH)
            ]

        load = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        busy = await asyncio.to_thread(
            fake.wait_for,
            lambda: (
                len(fake.requests) >= CLIENTS * 2 and in_flight_at(fake, victim.host.gateway) >= 2
            ),
            60.0,
        )
        assert busy, "the victim never had calls in flight"
        await asyncio.to_thread(victim.kill)
        calls = [call for calls in await asyncio.gather(*load) for call in calls]

    # Clients: every call answered; every failure was one that a retry fixed on the other host.
    assert all(call.answered is not None for call in calls), [c for c in calls if not c.answered]
    failed = [attempt for call in calls for attempt in call.failed]
    assert failed, "the kill cut no call"
    for attempt in failed:
        assert attempt.status is None or attempt.status in RETRYABLE, attempt
    for call in calls:
        if call.failed:
            assert call.answered is not None and call.answered.host == "b", call

    # The victim comes back on its own volume and replays its journal.
    await asyncio.to_thread(victim.start)
    await asyncio.to_thread(fresh.lb.wait_serving, set(fresh.hosts))
    for gateway in fresh.hosts.values():  # each host flushes its pending records
        with admin(gateway.url) as api:
            assert api.get("/spend", params={"key": key["id"]}).status_code == 200
    rows = await spend_rows(fresh.database_url, key["id"])
    ids = [row["request_id"] for row in rows]
    assert len(ids) == len(set(ids))  # nothing counted twice
    answered = {call.answered.request_id: call for call in calls if call.answered is not None}
    by_id = {row["request_id"]: row for row in rows}
    unrecorded = {
        request_id: (by_id.get(request_id), call)
        for request_id, call in answered.items()
        if request_id not in by_id or by_id[request_id]["status"] != 200
    }
    assert not unrecorded, unrecorded
    # Every call that reached the upstream has its record (the cut ones from the journal).
    upstream_calls = len(fake.requests)
    assert upstream_calls <= len(rows) <= upstream_calls + len(failed)
    recovered = [row for row in rows if row["flags"] == "crash_recovered"]
    assert recovered, "no record came from the victim's journal"
    # Each call, answered or cut, is charged its worst case, which is its cost.
    cost = Decimal(CALL_COST_CENTS) / 100
    assert all(row["cost_usd"] == cost for row in rows), rows
    total = cost * len(rows)
    with admin(fresh.lb.url) as api:
        shown = api.get(f"/keys/{key['id']}").json()["spend_usd"]
    assert Decimal(shown["lifetime"]) == total

    # The shared budget ledger: no hold of the dead host is left. A call the kill cut
    # between its hold and its journaled intent has no record; its hold was reclaimed at
    # its full amount, so the ledger may count more than the records, never less.
    ledger = await asyncio.to_thread(budget_slot, fresh, key["id"])
    assert ledger["held"] == 0 and ledger["holds"] == 0, ledger
    beyond = ledger["spent"] - total
    assert 0 <= beyond <= cost * len(failed) and beyond % cost == 0, ledger
    # Room for exactly two more calls on top of what the ledger counts.
    with admin(fresh.lb.url) as api:
        body = {"max_budget_usd": str(ledger["spent"] + 2 * cost)}
        assert api.patch(f"/keys/{key['id']}", json=body).status_code == 200
    fake.reset()
    after = [post(fresh.lb.url, i, key["key"]) for i in range(3)]
    assert [r.status_code for r in after] == [200, 200, 402]


def budget_slot(cluster: Cluster, key_id: str) -> dict[str, Decimal]:
    """The key's lifetime budget in Redis: spent and held (USD), and the holds left in
    the whole cluster (see ``metering/redis_ledger.py`` for the layout)."""
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        slot = f"{cluster.redis_prefix}budget:key:{key_id}:19700101"
        spent, held = (int(v or 0) for v in client.hmget(slot, ["spent", "held"]))
        holds = client.zcard(f"{cluster.redis_prefix}budget-holds")
    finally:
        client.close()
    nano = Decimal(10**9)
    return {"spent": spent / nano, "held": held / nano, "holds": Decimal(holds)}
