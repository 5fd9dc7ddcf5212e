"""What emitting costs the request path: building a ``request.completed`` event from a
spend record and appending it to the outbox (segment rollovers included). Run with
``-s`` to see the numbers."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from tollway.events.config import EventsConfig
from tollway.events.envelope import REQUEST_COMPLETED, event_id
from tollway.events.file_sink import FileSink
from tollway.events.service import Events
from tollway.metering.records import Recorder, utc_iso
from tollway.store.db import Database

EMITS = 20_000
# Generous: the cost is a few microseconds; a loaded CI machine must not fail this.
MEAN_LIMIT_US = 100.0


def spend_record(n: int) -> dict[str, Any]:
    """A spend record as the pipeline builds one (call.py, meter.complete)."""
    return {
        "request_id": f"req_{n:024x}",
        "key_id": "key_3f9a1c7e5b2d4086",
        "project_id": "prj_0a1b2c3d4e5f6071",
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "stream": True,
        "metadata": {"org": "acme", "session": "s-42", "user": "u-7"},
        "provider": "openai",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "status": 200,
        "latency_ms": 812.345,
        "ttft_ms": 201.5,
        "cached": False,
        "error": None,
        "attempts": 1,
        "guards": None,
        "ts": utc_iso(time.time()),
        "input_tokens": 1234,
        "output_tokens": 321,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": "0.0003777",
        "priced": True,
        "estimated": False,
        "flags": None,
    }


async def test_emit_costs_microseconds(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'tollway.db'}")
    path = tmp_path / "events.jsonl"
    config = EventsConfig(file={"path": path, "max_bytes": 1024**3})
    sinks = [FileSink(config.file.options() if config.file else {})]
    events = Events(config, sinks, db, Recorder(db, tmp_path), tmp_path)
    records = [spend_record(n) for n in range(EMITS)]
    took = []
    await events.start()
    try:
        for record in records:
            started = time.perf_counter_ns()
            events.emit(
                REQUEST_COMPLETED, record, event_id(REQUEST_COMPLETED, record["request_id"])
            )
            took.append(time.perf_counter_ns() - started)
            await asyncio.sleep(0)  # calls interleave with the background tasks
    finally:
        await events.aclose()
        await db.aclose()
    micros = sorted(ns / 1000 for ns in took)
    mean = statistics.fmean(micros)
    p50, p99 = micros[len(micros) // 2], micros[int(len(micros) * 0.99)]
    print(
        f"\nemit request.completed: mean {mean:.1f} us, p50 {p50:.1f} us, p99 {p99:.1f} us, "
        f"max {micros[-1]:.0f} us"
    )
    assert len(path.read_bytes().splitlines()) == EMITS  # and every one was delivered
    assert mean < MEAN_LIMIT_US
