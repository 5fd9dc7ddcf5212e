"""A burst of events through the outbox: many small segments made and retired while the
file sink delivers on the same event loop; every event arrives once, in order, and the
delivered segments are deleted. (What an emit costs: ``bench/events_emit_cost.py``.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tollway.events.config import EventsConfig
from tollway.events.envelope import REQUEST_COMPLETED, event_id
from tollway.events.file_sink import FileSink
from tollway.events.outbox import OUTBOX_DIR
from tollway.events.service import Events
from tollway.metering.records import Recorder
from tollway.store.db import Database

EVENTS = 5_000


async def test_a_burst_is_delivered_whole_and_in_order(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'tollway.db'}")
    path = tmp_path / "events.jsonl"
    # Segments of 8 KiB: a few hundred rollovers, most onto a spare made ahead.
    config = EventsConfig(file={"path": path, "max_bytes": 1024**3}, segment_bytes=8192)
    assert config.file is not None
    events = Events(config, [FileSink(config.file.options())], db, Recorder(db, tmp_path), tmp_path)
    assert events.outbox is not None
    own = events.outbox.own.directory
    await events.start()
    try:
        for n in range(EVENTS):
            request_id = f"req_{n:08d}"
            data = {"request_id": request_id, "n": n, "padding": "x" * 200}
            events.emit(REQUEST_COMPLETED, data, event_id(REQUEST_COMPLETED, request_id))
            if n % 7 == 0:
                await asyncio.sleep(0)  # the dispatcher and the upkeep run in between
    finally:
        await events.aclose()
        await db.aclose()
    received = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [event["data"]["n"] for event in received] == list(range(EVENTS))
    assert len({event["id"] for event in received}) == EVENTS
    assert all(event["type"] == REQUEST_COMPLETED for event in received)
    assert set(received[0]) == {"id", "type", "created_at", "data"}
    # Everything delivered: this process's outbox is gone, segments and all.
    assert not own.exists()
    assert list((tmp_path / OUTBOX_DIR).iterdir()) == []
