"""What tracing costs per call: ``python tests/telemetry/tracing_cost.py``.

CPU time is reported besides wall time, since it does not depend on what else the
machine runs:

1. The hooks on the event loop: one call's server span, one try, the answer's bytes
   seen, both spans ended and queued (a real gateway's router; a real record). Off
   (no observer), on, and on but sampling nothing (trace context still propagated).
2. The exporter's work for those two spans (protobuf encoding), which runs in the SDK's
   thread.
3. End to end: sequential non-streamed calls through the real gateway to the fake
   upstream, tracing off and on, in alternating rounds: the process's CPU per call
   (gateway, client and fake upstream together; the receiver only counts) and the
   latency.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otlp_receiver import OtlpReceiver

from fake_upstream import FakeUpstream, chat_completion
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, gateway_settings, running_gateway
from tollway.app import create_app
from tollway.asgi import Message, new_request_id
from tollway.call import CallRecord
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage
from tollway.telemetry.observer import Observer, Observers

HOOK_CALLS = 20_000
ROUNDS, CALLS_PER_ROUND = 6, 500


class Keep(SpanExporter):
    """Keeps the spans it is given (to time their encoding)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


async def _discard(message: Message) -> None:
    return None


async def hook_cost(observer: Observer, route: Any, body: bytes) -> float:
    """CPU microseconds of one call's hooks (mean)."""
    started = time.thread_time()
    for _ in range(HOOK_CALLS):
        record = CallRecord(
            new_request_id(), Endpoint.CHAT_COMPLETIONS, time.perf_counter(), time.time()
        )
        record.scope = {"method": "POST", "path": "/v1/chat/completions", "headers": []}
        record.send = _discard
        observer.call_started(record)
        record.model, record.stream = GPT, False
        observer.attempt_started(record, route)
        record.status, record.served = 200, True
        record.outcome.usage = Usage(17, 6)
        await record.send({"type": "http.response.start", "status": 200, "headers": []})
        await record.send({"type": "http.response.body", "body": body})
        observer.attempt_finished(record, route, None, 0.001)
        observer.call_finished(record)
    return (time.thread_time() - started) / HOOK_CALLS * 1e6


async def observer_costs(fake: FakeUpstream, data: Path) -> None:
    """Hooks off, on and sampled out; then the encoding of the spans made."""
    body = orjson.dumps(chat_completion(GPT_UPSTREAM))
    route: Any = None
    costs: dict[str, float] = {}
    kept = Keep()
    for name, ratio in (("on", 1.0), ("sampled out", 0.0)):
        telemetry = {"otlp_endpoint": "http://127.0.0.1:9", "sample_ratio": ratio}
        gateway = create_app(gateway_settings(fake, data / name, telemetry=telemetry))
        route = gateway.router.resolve(GPT).choose(set(), None)
        [tracing] = [o for o in gateway.observer.observers if type(o).__name__ == "Tracing"]
        # Not started: no OTLP exporter; the spans are only kept, in this thread.
        tracing.provider.add_span_processor(SimpleSpanProcessor(kept))  # type: ignore[attr-defined]
        costs[name] = await hook_cost(Observers([tracing]), route, body)
    off = await hook_cost(Observers([]), route, body)
    started = time.thread_time()
    encode_spans(kept.spans).SerializePartialToString()
    encoding = (time.thread_time() - started) / len(kept.spans) * 2 * 1e6
    print(
        f"hooks per call (CPU): off {off:.1f} us, on +{costs['on'] - off:.1f} us (the "
        f"simple processor included), sampled out +{costs['sampled out'] - off:.1f} us; "
        f"encoding the call's two spans for export: {encoding:.1f} us"
    )


def calls(url: str, count: int) -> list[float]:
    """Seconds per call, sequential, one kept-alive connection."""
    body = {"model": GPT, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    out = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.post("/v1/chat/completions", json=body).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


def end_to_end(fake: FakeUpstream, data: Path) -> None:
    """Tracing's added CPU and latency through the real gateway."""
    receiver = OtlpReceiver(decode=False).start()
    telemetry = {"otlp_endpoint": receiver.url}
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu = {"off": 0.0, "on": 0.0}
    try:
        with (
            running_gateway(gateway_settings(fake, data / "off")) as off,
            running_gateway(gateway_settings(fake, data / "on", telemetry=telemetry)) as on,
        ):
            for gateway in (off, on):
                calls(gateway.url, 200)  # warm up
            for _ in range(ROUNDS):
                for name, gateway in (("off", off), ("on", on)):
                    started = time.process_time()
                    wall[name].extend(calls(gateway.url, CALLS_PER_ROUND))
                    cpu[name] += time.process_time() - started
                fake.reset()
        exports = len(receiver.exports)
    finally:
        receiver.stop()
    count = ROUNDS * CALLS_PER_ROUND
    per_call = {name: seconds / count * 1e6 for name, seconds in cpu.items()}
    p50 = {name: statistics.median(values) * 1e6 for name, values in wall.items()}
    print(
        f"end to end, {count} calls each: CPU per call off {per_call['off']:.0f} us, "
        f"on {per_call['on']:.0f} us (+{per_call['on'] - per_call['off']:.0f}); "
        f"latency p50 off {p50['off']:.0f} us, on {p50['on']:.0f} us "
        f"(+{p50['on'] - p50['off']:.0f}); {exports} export requests"
    )


def main() -> None:
    fake = FakeUpstream().start()
    try:
        with tempfile.TemporaryDirectory() as data:
            asyncio.run(observer_costs(fake, Path(data) / "hooks"))
            end_to_end(fake, Path(data))
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
