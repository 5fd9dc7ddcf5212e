"""The file and Redis Streams sinks on the real gateway: the file rotates and loses
nothing; a Redis consumer group reads every event, across a restart of the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from events_support import admin, chat, file_events, wait_for

from fake_upstream import FakeUpstream
from harness import gateway_settings, running_gateway
from tollway.events.envelope import event_id

GROUP = "billing"


def test_the_file_rotates_and_loses_nothing(fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    sink = {"path": str(path), "max_bytes": 4096, "backups": 100, "batch_size": 3}
    settings = gateway_settings(fake, tmp_path / "data", events={"file": sink})
    with running_gateway(settings) as gw:
        sent = {chat(gw.url).headers["x-request-id"] for _ in range(25)}

        def completed() -> set[str]:
            found = file_events(path)
            return {e["data"]["request_id"] for e in found if e["type"] == "request.completed"}

        wait_for(lambda: completed() == sent, what="every event in the files")
    rotated = sorted(path.parent.glob("events.jsonl.*[0-9]"))
    assert len(rotated) >= 3
    for each in [path, *rotated]:
        lines = each.read_bytes().splitlines()
        assert sum(len(line) + 1 for line in lines) <= 4096  # no batch is bigger here
        assert all(orjson.loads(line)["type"] == "request.completed" for line in lines)
    found = file_events(path)
    assert len(found) == len({event["id"] for event in found}) == 25
    assert {event["id"] for event in found} == {event_id("request.completed", r) for r in sent}


def test_rotation_keeps_only_the_configured_backups(fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = {"path": str(path), "max_bytes": 2048, "backups": 1, "batch_size": 1}
    settings = gateway_settings(fake, tmp_path / "data", events={"file": sink})
    with running_gateway(settings) as gw:
        last = [chat(gw.url).headers["x-request-id"] for _ in range(12)][-1]
        wait_for(
            lambda: any(e["data"]["request_id"] == last for e in file_events(path)),
            what="the last event",
        )
    assert sorted(p.name for p in tmp_path.glob("events.jsonl*")) == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.lock",
    ]


@pytest.fixture
def stream_prefix(shared_redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys deleted after."""
    prefix = f"tollway-events-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(shared_redis_url)
    for name in client.scan_iter(match=prefix + "*"):
        client.delete(name)
    client.close()


def _read_group(client: redis.Redis, stream: str, consumer: str) -> list[dict[str, Any]]:
    """Everything new for the group, acknowledged as read."""
    events = []
    while True:
        answer: Any = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=100)
        if not answer:
            return events
        for entry_id, fields in answer[0][1]:
            event = orjson.loads(fields[b"event"])
            assert fields[b"id"].decode() == event["id"]
            assert fields[b"type"].decode() == event["type"]
            events.append(event)
            client.xack(stream, GROUP, entry_id)


def test_a_consumer_group_reads_every_event_across_a_restart(
    fake: FakeUpstream, tmp_path: Path, shared_redis_url: str, stream_prefix: str
) -> None:
    stream = stream_prefix + "events"
    client = redis.Redis.from_url(shared_redis_url)
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    settings = gateway_settings(
        fake,
        tmp_path / "data",
        redis_url=shared_redis_url,
        redis_prefix=stream_prefix,
        events={"redis_stream": {"stream": "events", "maxlen": 10_000}},
    )
    seen: dict[str, dict[str, Any]] = {}

    def consume(wanted: set[str]) -> bool:
        for event in _read_group(client, stream, "worker-1"):
            seen[event["id"]] = event  # deduplicated by id
        return wanted <= set(seen)

    with running_gateway(settings) as gw, admin(gw.url) as api:
        key = api.post("/keys", json={"name": "streamed"}).json()
        sent = [chat(gw.url, key["key"]).headers["x-request-id"] for _ in range(4)]
        first = {event_id("request.completed", r) for r in sent} | {
            event_id("key.created", key["id"])
        }
        wait_for(lambda: consume(first), what="the first events in the stream")
    with running_gateway(settings) as gw:
        later = {event_id("request.completed", chat(gw.url).headers["x-request-id"])}
        wait_for(lambda: consume(later), what="the restarted gateway's events")
    pending: Any = client.xpending(stream, GROUP)
    client.close()
    assert pending["pending"] == 0
    assert set(seen) == first | later
    assert {event["type"] for event in seen.values()} == {"request.completed", "key.created"}
