"""What OpenTelemetry tracing costs a proxied call, off and on.

    python bench/tracing_cost.py [--quick] [--rounds N] [--calls N] [--json PATH]

1. Off loads nothing: a gateway built without a traces endpoint imports neither
   ``tollway.telemetry.tracing`` nor the OpenTelemetry SDK (checked in a fresh
   interpreter), and no tracing hook is among its observers, so no tracing code runs.
2. The hooks, in process: CPU time on the event loop of one call's hooks (server span,
   one try, the answer's bytes seen, both spans ended and queued for the batch
   exporter), tracing off, on, and on sampling nothing (context still propagated); and
   the encoding of the call's two spans, which the exporter's thread does.
3. End to end: three ``tollway serve`` processes in front of the fake upstream, two
   with tracing off and one exporting to an OTLP/HTTP receiver run here; sequential
   non-streamed calls over one keep-alive connection, in rounds whose order rotates.
   Per gateway: the median over rounds of p50 and p99 latency, and the serving
   process's CPU per call (from ``/proc``, over the whole run, the exporter's thread
   included). The two "off" gateways differ only by noise: their difference is what
   this machine can resolve.

``measure(Options(...))`` returns a ``TracingCost`` (``.markdown()``, ``.as_dict()``) for
a driver that reports it with its own results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
MASTER_KEY = "sk-bench-tracing-master-0123456789abcdef"
MODEL = "bench-model"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
GATEWAYS = ("off", "off again", "on")
# The gateway runs on one CPU, the fake upstream and this client on the other.
GATEWAY_CPU, LOAD_CPU = 0, 1
CAN_PIN = len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None
SETTLE_SECONDS = 6.0  # the batch exporter's 5 s schedule: the last spans are exported


@dataclass(frozen=True)
class Options:
    """How much to measure."""

    rounds: int = 5
    calls: int = 1000  # per gateway per round
    hook_calls: int = 20_000


@dataclass
class Side:
    """One gateway's figures (microseconds)."""

    p50: float
    p99: float
    cpu_per_call: float


@dataclass
class TracingCost:
    """Everything measured."""

    sdk_loaded_when_off: bool
    hooks: dict[str, float]  # off, on, sampled_out, encode (CPU us per call)
    sides: dict[str, Side]
    exports: int  # export requests the receiver got from the "on" gateway
    calls: int  # per gateway
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def markdown(self) -> str:
        """The results as a short markdown report."""
        off, again, on = (self.sides[name] for name in GATEWAYS)
        hooks = self.hooks
        lines = [
            "### Tracing cost",
            "",
            f"Tracing off: OpenTelemetry SDK loaded: {'yes' if self.sdk_loaded_when_off else 'no'}"
            f"; tracing hooks per call: none (hooks CPU {hooks['off']:.1f} us, the same code "
            "as a gateway without tracing).",
            "",
            "| hooks per call (CPU, event loop) | us |",
            "|---|---|",
            f"| tracing off | {hooks['off']:.1f} |",
            f"| tracing on | {hooks['on']:.1f} (+{hooks['on'] - hooks['off']:.1f}) |",
            f"| on, sampling nothing | {hooks['sampled_out']:.1f} "
            f"(+{hooks['sampled_out'] - hooks['off']:.1f}) |",
            f"| encoding the call's spans (exporter thread) | {hooks['encode']:.1f} |",
            "",
            f"| end to end, {self.calls} sequential calls per gateway | p50 us | p99 us "
            "| CPU us per call |",
            "|---|---|---|---|",
        ]
        for name, side in self.sides.items():
            lines.append(
                f"| tracing {name} | {side.p50:.0f} | {side.p99:.0f} | {side.cpu_per_call:.0f} |"
            )
        lines += [
            f"| noise (off again - off) | {again.p50 - off.p50:+.0f} | {again.p99 - off.p99:+.0f} "
            f"| {again.cpu_per_call - off.cpu_per_call:+.0f} |",
            f"| cost of tracing on (on - off) | {on.p50 - off.p50:+.0f} | {on.p99 - off.p99:+.0f} "
            f"| {on.cpu_per_call - off.cpu_per_call:+.0f} |",
            "",
            f"{self.exports} OTLP export requests received.",
            *self.notes,
        ]
        return "\n".join(lines)


# ------------------------------------------------------------------------- off loads nothing

_IMPORTS = """
import json, sys
from pathlib import Path
import fastapi  # the web framework loads the OpenTelemetry API by itself
before = {name for name in sys.modules if name.startswith("opentelemetry")}
from tollway.app import create_app
from tollway.settings import Settings
gateway = create_app(Settings(master_key="sk-bench-imports-00000000000000", data_dir=Path(sys.argv[1])))
loaded = {name for name in sys.modules if name.startswith("opentelemetry")} - before
tracers = [o for o in gateway.observer.observers if type(o).__name__ == "Tracing"]
print(json.dumps(bool(loaded) or "tollway.telemetry.tracing" in sys.modules or bool(tracers)))
"""


def sdk_loaded_when_off(work: Path) -> bool:
    """Whether a gateway without a traces endpoint loads any of tracing (it must not)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, str(work / "imports")],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=True,
    )
    loaded: bool = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


# ------------------------------------------------------------------------- the hooks


async def _hook_cost(observer: Any, route: Any, body: bytes, calls: int) -> float:
    """CPU microseconds (this thread) of one call's hooks, the mean over ``calls``."""
    from tollway.asgi import Message, new_request_id
    from tollway.call import CallRecord
    from tollway.dialects.endpoints import Endpoint
    from tollway.metering.usage import Usage

    async def discard(message: Message) -> None:
        return None

    started = time.thread_time()
    for _ in range(calls):
        record = CallRecord(
            new_request_id(), Endpoint.CHAT_COMPLETIONS, time.perf_counter(), time.time()
        )
        record.scope = {"method": "POST", "path": "/v1/chat/completions", "headers": []}
        record.send = discard
        observer.call_started(record)
        record.model, record.stream = MODEL, False
        observer.attempt_started(record, route)
        record.status, record.served = 200, True
        record.outcome.usage = Usage(17, 6)
        await record.send({"type": "http.response.start", "status": 200, "headers": []})
        await record.send({"type": "http.response.body", "body": body})
        observer.attempt_finished(record, route, None, 0.001)
        observer.call_finished(record)
    return (time.thread_time() - started) / calls * 1e6


async def hook_costs(work: Path, calls: int) -> dict[str, float]:
    """The hooks per call: tracing off, on, sampled out; and the spans' encoding."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from tollway.app import create_app
    from tollway.settings import Settings
    from tollway.telemetry.observer import Observers

    class Keep(SpanExporter):
        """Keeps the first spans it is given (to time their encoding), drops the rest."""

        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if len(self.spans) < 2000:
                self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    answer = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23},
        }
    ).encode()
    costs: dict[str, float] = {}
    kept = Keep()
    route: Any = None
    for name, ratio in (("on", 1.0), ("sampled_out", 0.0)):
        settings = Settings(
            **_gateway_config(work / f"hooks-{name}", "http://127.0.0.1:9"),
            telemetry={"otlp_endpoint": "http://127.0.0.1:9", "sample_ratio": ratio},
        )
        gateway = create_app(settings)
        route = gateway.router.resolve(MODEL).routes()[0]
        [tracing] = [o for o in gateway.observer.observers if type(o).__name__ == "Tracing"]
        # Not started (no OTLP exporter): the spans go to a batch processor as they
        # would, and from there to ``kept``, in the processor's own thread.
        processor = BatchSpanProcessor(kept)
        tracing.provider.add_span_processor(processor)
        costs[name] = await _hook_cost(Observers([tracing]), route, answer, calls)
        processor.shutdown()
        await gateway.db.aclose()
    costs["off"] = await _hook_cost(Observers([]), route, answer, calls)
    started = time.thread_time()
    encode_spans(kept.spans).SerializePartialToString()
    costs["encode"] = (time.thread_time() - started) / len(kept.spans) * 2 * 1e6
    return costs


# ------------------------------------------------------------------------- end to end


class _Receiver:
    """An OTLP/HTTP endpoint that counts export requests and answers them."""

    def __init__(self) -> None:
        self.exports = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.exports += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _clean_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOLLWAY_", "OTEL_", "OPENAI_", "ANTHROPIC_"))
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if CAN_PIN else command


def _gateway_config(data_dir: Path, upstream: str) -> dict[str, Any]:
    return {
        "master_key": MASTER_KEY,
        "data_dir": str(data_dir),
        "log": {"level": "warning", "access": False},
        "providers": {"oa": {"type": "openai", "base_url": upstream + "/v1", "api_key": "x"}},
        "models": [{"name": MODEL, "provider": "oa"}],
    }


def _wait_ready(url: str, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url + path`` answers 200 (a busy machine may take a while to start)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            connection = HTTPConnection(url.removeprefix("http://"), timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready:\n{log.read_text(errors='replace')[-2000:]}")


@contextlib.contextmanager
def _process(
    command: list[str], log: Path, url: str, ready_path: str = "/health/ready"
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(), start_new_session=True
        )
    try:
        _wait_ready(url, ready_path, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _calls(url: str, count: int) -> list[float]:
    """Seconds per call, sequential, over one keep-alive connection."""
    connection = HTTPConnection(url.removeprefix("http://"), timeout=10)
    headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    out = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", BODY, headers)
            response = connection.getresponse()
            response.read()
            out.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")
    finally:
        connection.close()
    return out


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def end_to_end(work: Path, options: Options) -> tuple[dict[str, Side], int]:
    """Three gateways, rounds of sequential calls; each gateway's figures, and the
    export requests the receiver got."""
    receiver = _Receiver()
    upstream_port = _free_port()
    upstream = f"http://{HOST}:{upstream_port}"
    fake = [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(upstream_port)]
    urls: dict[str, str] = {}
    commands: dict[str, list[str]] = {}
    tollway = str(Path(sys.executable).parent / "tollway")
    for number, name in enumerate(GATEWAYS):
        config = _gateway_config(work / f"gateway-{number}", upstream)
        if name == "on":
            config["telemetry"] = {"otlp_endpoint": receiver.url}
        path = work / f"gateway-{number}.json"  # YAML is a superset of JSON
        path.write_text(json.dumps(config), encoding="utf-8")
        port = _free_port()
        urls[name] = f"http://{HOST}:{port}"
        command = [tollway, "serve", "--config", str(path), "--port", str(port)]
        commands[name] = _pinned(GATEWAY_CPU, command)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                _process(_pinned(LOAD_CPU, fake), work / "upstream.log", upstream, "/health")
            )
            pids = {
                name: stack.enter_context(
                    _process(commands[name], work / f"{name.replace(' ', '-')}.log", urls[name])
                ).pid
                for name in GATEWAYS
            }
            if CAN_PIN:
                os.sched_setaffinity(0, {LOAD_CPU})
            for name in GATEWAYS:
                _calls(urls[name], max(100, options.calls // 5))  # warm up
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            rounds: dict[str, list[list[float]]] = {name: [] for name in GATEWAYS}
            for number in range(options.rounds):
                order = GATEWAYS[number % 3 :] + GATEWAYS[: number % 3]
                for name in order:
                    rounds[name].append(_calls(urls[name], options.calls))
            time.sleep(SETTLE_SECONDS)
            cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    finally:
        receiver.stop()
    total = options.rounds * options.calls
    sides = {
        name: Side(
            p50=statistics.median(_percentile(r, 0.5) for r in rounds[name]) * 1e6,
            p99=statistics.median(_percentile(r, 0.99) for r in rounds[name]) * 1e6,
            cpu_per_call=cpu[name] / total * 1e6,
        )
        for name in GATEWAYS
    }
    return sides, receiver.exports


def measure(options: Options) -> TracingCost:
    """Everything, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="tollway-tracing-bench-") as temp:
        work = Path(temp)
        loaded = sdk_loaded_when_off(work)
        hooks = asyncio.run(hook_costs(work, options.hook_calls))
        sides, exports = end_to_end(work, options)
    notes = [] if CAN_PIN else ["Not pinned to CPUs (needs two CPUs and taskset): noisier."]
    return TracingCost(loaded, hooks, sides, exports, options.calls, notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What tracing costs a proxied call.")
    parser.add_argument("--quick", action="store_true", help="two short rounds")
    parser.add_argument("--rounds", type=int, help="rounds per gateway (default 5)")
    parser.add_argument("--calls", type=int, help="calls per gateway per round (default 1000)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    quick = Options(rounds=2, calls=300, hook_calls=5000)
    base = quick if args.quick else Options()
    options = Options(
        rounds=args.rounds or base.rounds,
        calls=args.calls or base.calls,
        hook_calls=base.hook_calls,
    )
    result = measure(options)
    print(result.markdown())
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
    # Off must load nothing of tracing: that is the claim this measures.
    return 1 if result.sdk_loaded_when_off else 0


if __name__ == "__main__":
    sys.exit(main())
