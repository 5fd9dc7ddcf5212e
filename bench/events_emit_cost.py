"""What emitting an event costs the request path: building a ``request.completed`` event
from a spend record and appending it to the outbox (segment rollovers included), while
the file sink delivers in the background on the same event loop.

    python bench/events_emit_cost.py [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tollway.events.config import EventsConfig
from tollway.events.envelope import REQUEST_COMPLETED, event_id
from tollway.events.file_sink import FileSink
from tollway.events.service import Events
from tollway.metering.records import Recorder, utc_iso
from tollway.store.db import Database


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


async def emit_costs(work: Path, count: int) -> list[float]:
    """Microseconds of each emit, in order."""
    db = Database(f"sqlite:///{work / 'tollway.db'}")
    path = work / "events.jsonl"
    config = EventsConfig(file={"path": path, "max_bytes": 1024**3})
    sinks = [FileSink(config.file.options() if config.file else {})]
    events = Events(config, sinks, db, Recorder(db, work), work)
    records = [spend_record(n) for n in range(count)]
    took = []
    await events.start()
    try:
        for record in records:
            started = time.perf_counter_ns()
            events.emit(
                REQUEST_COMPLETED, record, event_id(REQUEST_COMPLETED, record["request_id"])
            )
            took.append((time.perf_counter_ns() - started) / 1000)
            await asyncio.sleep(0)  # calls interleave with the background tasks
    finally:
        await events.aclose()
        await db.aclose()
    delivered = len(path.read_bytes().splitlines())
    if delivered != count:
        raise RuntimeError(f"{delivered} of {count} events delivered")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description="What emitting an event costs.")
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tollway-events-bench-") as temp:
        micros = sorted(asyncio.run(emit_costs(Path(temp), args.events)))
    p50, p99 = micros[len(micros) // 2], micros[int(len(micros) * 0.99)]
    print(
        f"emit request.completed ({len(micros)} events): mean {statistics.fmean(micros):.1f} us,"
        f" p50 {p50:.1f} us, p99 {p99:.1f} us, max {micros[-1]:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
