"""Signed webhooks on the real gateway: every event arrives at least once, with a valid
signature, across a graceful restart with deliveries pending and across a ``kill -9``
(the outbox of the stopped process is adopted by the next); refused events go to the
dead letters, which the API lists."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from events_support import (
    SECRET,
    Receiver,
    admin,
    chat,
    outbox_instances,
    receiving,
    wait_for,
)

from fake_upstream import FakeUpstream
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, OPENAI_UPSTREAM_KEY, gateway_settings
from harness import running_gateway as running
from served import TOLLWAY, ServedGateway, clean_env
from tollway.events.envelope import event_id

FAST_RETRIES = {"backoff_seconds": 0.05, "max_backoff_seconds": 0.2, "max_attempts": 1000}


def _hooked(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"webhooks": [{"url": receiver.url, "secret": SECRET, **FAST_RETRIES, **extra}]}


def test_every_event_arrives_signed_across_a_restart_with_deliveries_pending(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    with receiving() as receiver:
        events = {**_hooked(receiver), "drain_seconds": 0.3}
        settings = gateway_settings(fake, tmp_path / "data", events=events)
        with running(settings) as gw, admin(gw.url) as api:
            key = api.post("/keys", json={"name": "hooked"}).json()
            sent = [chat(gw.url, key["key"]).headers["x-request-id"] for _ in range(3)]
            wait_for(lambda: set(sent) <= receiver.completed(), what="the first calls")

            receiver.failing = True  # the receiver answers 503 from now on
            sent += [chat(gw.url, key["key"]).headers["x-request-id"] for _ in range(4)]
            assert api.delete(f"/keys/{key['id']}").status_code == 200
            wait_for(lambda: receiver.refused >= 1, what="a refused delivery")
        # Stopped with deliveries pending: its outbox stays for the next process.
        assert len(outbox_instances(tmp_path / "data")) == 1
        assert not set(sent) <= receiver.completed()

        receiver.stop()  # now down altogether: connections refused
        receiver.failing = False
        with running(settings) as gw:
            sent.append(chat(gw.url).headers["x-request-id"])
            receiver.start()
            wait_for(lambda: set(sent) <= receiver.completed(), what="every call's event")
            wait_for(lambda: len(receiver.of_type("key.revoked")) == 1, what="key.revoked")
            # The stopped process's outbox is deleted once everything in it is delivered.
            wait_for(lambda: len(outbox_instances(tmp_path / "data")) == 1, what="adoption")

    assert receiver.bad_signatures == 0
    assert receiver.completed() == set(sent)
    for rid in sent:
        assert event_id("request.completed", rid) in receiver.by_id()
    created = receiver.of_type("key.created")
    assert [event["data"]["id"] for event in created] == [key["id"]]
    assert key["key"] not in str(receiver.deliveries)  # the secret is never in an event
    revoked = receiver.of_type("key.revoked")[0]
    assert revoked["data"] | {"actor": "master"} == {
        "key_id": key["id"],
        "name": "hooked",
        "project_id": key["project_id"],
        "actor": "master",
        "via": "key",
    }
    assert revoked["id"] == event_id("key.revoked", key["id"])


def test_nothing_is_lost_when_the_gateway_is_killed(fake: FakeUpstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with receiving() as receiver:
        config = {
            "master_key": MASTER_KEY,
            "data_dir": str(data),
            "log": {"level": "warning", "access": False},
            "providers": {
                "oa": {
                    "type": "openai",
                    "base_url": fake.url + "/v1",
                    "api_key": OPENAI_UPSTREAM_KEY,
                }
            },
            "models": [{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM}],
            "events": _hooked(receiver),
        }
        path = tmp_path / "tollway.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        served = ServedGateway(path, data).start()
        try:
            receiver.failing = True
            sent = [chat(served.url).headers["x-request-id"] for _ in range(5)]
            wait_for(lambda: receiver.refused >= 1, what="a refused delivery")
            served.kill()  # SIGKILL: no shutdown, the outbox is what the page cache holds
            assert not receiver.completed()

            receiver.failing = False
            served.start()
            wait_for(lambda: set(sent) <= receiver.completed(), what="the killed one's events")
            wait_for(lambda: len(outbox_instances(data)) == 1, what="the dead outbox deleted")
        finally:
            served.stop()
    assert receiver.bad_signatures == 0


def test_refused_events_are_dead_lettered_and_listed(fake: FakeUpstream, tmp_path: Path) -> None:
    with receiving() as receiver:
        receiver.failing = True
        hook = {"max_attempts": 2, "backoff_seconds": 0.01, "events": ["request.*"]}
        events = {"webhooks": [{"url": receiver.url, "secret": SECRET, **hook}]}
        settings = gateway_settings(fake, tmp_path / "data", events=events)
        with running(settings) as gw, admin(gw.url) as api:
            sent = {chat(gw.url).headers["x-request-id"] for _ in range(3)}
            api.post("/keys", json={"name": "not-for-this-hook"})  # filtered out

            def listed() -> dict[str, Any]:
                answer = api.get("/events/dead-letters")
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

            wait_for(lambda: listed()["total"] == 3, what="three dead letters")
            listing = listed()
            sinks = api.get("/events/sinks").json()
            shown = subprocess.run(
                [TOLLWAY, "events", "--url", gw.url, "--master-key", MASTER_KEY, "dead-letters"],
                capture_output=True,
                text=True,
                env=clean_env(NO_COLOR="1", COLUMNS="200"),
                check=True,
            ).stdout
            assert api.get("/events/dead-letters", params={"sink": "other"}).json()["total"] == 0
            assert api.get("/events/dead-letters", params={"limit": 0}).status_code == 422

    assert {entry["event"]["data"]["request_id"] for entry in listing["data"]} == sent
    assert {entry["attempts"] for entry in listing["data"]} == {2}
    assert {entry["error"] for entry in listing["data"]} == {"HTTP 503"}
    assert listing["file"] == str(tmp_path / "data" / "events" / "dead-letters.jsonl")
    assert receiver.refused == 6  # two tries each, no key event
    assert [(sink["type"], sink["events"]) for sink in sinks] == [("webhook", ["request.*"])]
    assert "dead letters (3)" in shown and "HTTP 503" in shown
    assert str(tmp_path / "data" / "events" / "dead-letters.jsonl") in shown.replace("\n", "")
