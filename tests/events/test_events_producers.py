"""What produces events, on the real gateway with a file sink: budget thresholds (each
once, also after a restart), key events (created, revoked both ways, expired), circuit
breakers, and spend records the database refuses."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
from events_support import admin, chat, file_events, wait_for

from fake_upstream import Fail, FakeUpstream
from harness import GPT, GPT_UPSTREAM, gateway_settings, running_gateway
from tollway.events.envelope import event_id
from tollway.metering.journal import JOURNAL_DIR
from tollway.metering.records import utc_iso
from tollway.settings import Settings

PRICED = "priced-gpt"
# Input free, output one cent a token: a call answers 6 tokens, so costs exactly $0.06
# and its worst case (max_tokens 6) is exact.
PRICE = {"input_mtok": "0", "output_mtok": "10000"}


def _settings(fake: FakeUpstream, data: Path, **extra: Any) -> Settings:
    return gateway_settings(
        fake,
        data,
        events={"file": str(data / "events.jsonl"), "key_expiry_scan_seconds": 0.1},
        models=[
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": PRICED, "provider": "oa", "model": GPT_UPSTREAM, "price": PRICE},
        ],
        **extra,
    )


def _of(data: Path, kind: str) -> list[dict[str, Any]]:
    return [event for event in file_events(data / "events.jsonl") if event["type"] == kind]


def _thresholds(data: Path) -> list[tuple[str, float]]:
    return sorted(
        (event["data"]["scope"], event["data"]["threshold_percent"])
        for event in _of(data, "budget.threshold")
    )


def test_budget_thresholds_fire_once_each(fake: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = _settings(fake, data)
    with running_gateway(settings) as gw, admin(gw.url) as api:
        project = api.post("/projects", json={"name": "budgeted", "max_budget_usd": "0.60"})
        project_id = project.json()["id"]
        key = api.post(
            "/keys", json={"name": "spender", "project": project_id, "max_budget_usd": "0.30"}
        ).json()
        statuses = [chat(gw.url, key["key"], PRICED, max_tokens=6).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [402]  # $0.30 spent: the key's budget is full
        wanted = [("key", 50.0), ("key", 80.0), ("key", 100.0), ("project", 50.0)]
        wait_for(lambda: _thresholds(data) == wanted, what="the thresholds crossed")

    with running_gateway(settings) as gw, admin(gw.url) as api:
        other = api.post("/keys", json={"name": "other", "project": project_id}).json()
        # The project goes from 50% to 60%: nothing new (50% was reported before).
        rid = chat(gw.url, other["key"], PRICED, max_tokens=6).headers["x-request-id"]
        wait_for(
            lambda: any(e["data"]["request_id"] == rid for e in _of(data, "request.completed"))
        )
        time.sleep(1.0)  # a threshold check runs 0.2 s after a call
        assert _thresholds(data) == wanted
        for _ in range(3):  # then to 90%: 80% is crossed, once
            assert chat(gw.url, other["key"], PRICED, max_tokens=6).status_code == 200
        wait_for(lambda: _thresholds(data) == sorted([*wanted, ("project", 80.0)]))

    events = {e["data"]["threshold_percent"]: e for e in _of(data, "budget.threshold")}
    hundred = [e for e in _of(data, "budget.threshold") if e["data"]["threshold_percent"] == 100]
    assert hundred[0]["data"] == {
        "scope": "key",
        "key_id": key["id"],
        "threshold_percent": 100.0,
        "max_budget_usd": "0.3",
        "spent_usd": "0.3",
        "budget_period": None,
        "period_start": "1970-01-01T00:00:00+00:00",
    }
    assert hundred[0]["id"] == event_id(
        "budget.threshold", "key", key["id"], "1970-01-01", "0.3", "100"
    )
    assert events[80.0]["id"] != events[50.0]["id"]


def test_key_events(fake: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_gateway(_settings(fake, data)) as gw, admin(gw.url) as api:
        project = api.post("/projects", json={"name": "keyed"}).json()
        alone = api.post("/keys", json={"name": "alone", "metadata": {"org": "acme"}}).json()
        pair = [
            api.post("/keys", json={"name": f"pair-{n}", "project": project["id"]}).json()
            for n in range(2)
        ]
        brief = api.post("/keys", json={"name": "brief", "ttl": 1}).json()
        assert api.delete(f"/keys/{alone['id']}").status_code == 200
        assert api.delete(f"/keys/{alone['id']}").status_code == 200  # already revoked
        assert api.post(f"/projects/{project['id']}/revoke-keys").json()["revoked"] == 2
        wait_for(lambda: len(_of(data, "key.expired")) == 1, what="key.expired")
        wait_for(lambda: len(_of(data, "key.revoked")) == 3, what="key.revoked")
        time.sleep(0.5)  # a few more expiry scans: the expiry is reported once

    created = {e["data"]["id"]: e for e in _of(data, "key.created")}
    assert set(created) == {alone["id"], brief["id"], *(k["id"] for k in pair)}
    assert created[alone["id"]]["data"]["metadata"] == {"org": "acme"}
    assert created[alone["id"]]["data"]["actor"] == "master"
    assert created[alone["id"]]["id"] == event_id("key.created", alone["id"])
    raw = (data / "events.jsonl").read_text()
    assert all(k["key"] not in raw for k in [alone, brief, *pair])  # secrets never

    revoked = {e["data"]["key_id"]: e["data"]["via"] for e in _of(data, "key.revoked")}
    assert revoked == {alone["id"]: "key", pair[0]["id"]: "project", pair[1]["id"]: "project"}
    (expired,) = _of(data, "key.expired")
    assert expired["data"]["key_id"] == brief["id"]
    assert expired["id"] == event_id("key.expired", brief["id"], expired["data"]["expires_at"])


def test_circuit_events(fake: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = _settings(fake, data, circuit={"failures": 1, "cooldown": 0.3})
    with running_gateway(settings) as gw:
        fake.script(Fail(status=500))
        assert chat(gw.url).status_code >= 500
        wait_for(lambda: len(_of(data, "circuit.opened")) == 1, what="circuit.opened")
        time.sleep(0.4)  # the cooldown: the next call is the probe
        assert chat(gw.url).status_code == 200
        wait_for(lambda: len(_of(data, "circuit.closed")) == 1, what="circuit.closed")
    (opened,) = _of(data, "circuit.opened")
    assert opened["data"] == {"deployment": "oa/" + GPT_UPSTREAM, "state": "open"}


def test_a_refused_spend_record_is_an_event(fake: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    poisoned = {
        "request_id": "req_poisoned_1",
        "ts": utc_iso(1_790_000_000.0),
        "key_id": "key_1",
        "project_id": "prj_1",
        "endpoint": "chat.completions",
        "model": GPT,
        "status": 200,
        "latency_ms": 1.0,
        "stream": False,
        "cached": False,
        "attempts": 1,
        "metadata": {},
        "input_tokens": 10**19,  # past 64 bits: the database cannot take it
        "output_tokens": 5,
        "cost_usd": "0.0001",
        "priced": True,
        "estimated": False,
    }
    journal = data / JOURNAL_DIR
    journal.mkdir(parents=True)
    segment = journal / f"spend-deadhost.4242.0badf00d-{os.getpid()}.jsonl"
    segment.write_bytes(orjson.dumps(poisoned) + b"\n")
    with running_gateway(_settings(fake, data)):
        wait_for(lambda: len(_of(data, "record.quarantined")) == 1, what="record.quarantined")
    (event,) = _of(data, "record.quarantined")
    assert event["data"]["request_id"] == "req_poisoned_1"
    assert event["data"]["record"]["input_tokens"] == 10**19
    assert event["id"] == event_id("record.quarantined", "req_poisoned_1", event["data"]["reason"])
