"""What the metrics observer costs a proxied call, in microseconds.

Builds the real gateway (not started: no port, no upstream), then replays the hooks one
metered call fires (call_started, attempt_started, attempt_finished, call_finished)
on a filled-in CallRecord, many times, through the gateway's own ``Observers`` and
through the metrics observer alone; and the same for a streamed call. It runs twice:
values in memory (one worker), and in memory-mapped files (a worker of several, where
prometheus-client must be told before it is imported, so that run is a subprocess).

    python bench/metrics_observer.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

FILES_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _measure(calls: int) -> dict[str, float]:
    from tollway.app import create_app
    from tollway.auth.credentials import Principal
    from tollway.auth.directory import KeyEntry
    from tollway.call import CallRecord
    from tollway.dialects.endpoints import Endpoint
    from tollway.metering.usage import Usage
    from tollway.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    settings = Settings(
        master_key="sk-tw-master-bench-0000000000000000",
        data_dir=data_dir,
        providers={"oa": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}},
        models=[{"name": "gpt-bench", "provider": "oa", "model": "gpt-bench-1"}],
    )
    gateway = create_app(settings)
    assert gateway.metrics is not None
    plan = gateway.router.resolve("gpt-bench")
    route = plan.routes()[0]
    key = KeyEntry(
        id="key_bench",
        name="bench",
        project_id="proj_bench",
        project_name="bench",
        usable=True,
        reason="",
        expires_at=None,
        models=None,
        max_requests=None,
        metadata={},
        credentials={},
        limits={},
        project_limits={},
    )
    principal = Principal(kind="key", key_id=key.id, key=key)

    def record(stream: bool) -> CallRecord:
        call = CallRecord("req_bench", Endpoint.CHAT_COMPLETIONS, time.perf_counter(), time.time())
        call.principal, call.plan, call.model, call.stream = principal, plan, plan.model, stream
        call.provider, call.upstream_model = "oa", route.upstream_model
        call.status, call.served = 200, True
        call.ttft_ms = 120.0 if stream else None
        outcome = call.outcome
        outcome.usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000)
        outcome.cost, outcome.priced, outcome.journaled = Decimal("0.00042"), True, True
        return call

    def run(observer: Any, call: CallRecord) -> float:
        # CPU time of this process, best of five: other work on the machine may delay
        # the loop, but does not make it cost more.
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(calls):
                observer.call_started(call)
                observer.attempt_started(call, route)
                observer.attempt_finished(call, route, None, 0.25)
                observer.call_finished(call)
            best = min(best, time.process_time() - started)
        return best / calls * 1e6

    results: dict[str, float] = {}
    for stream in (False, True):
        call = record(stream)
        kind = "stream" if stream else "whole"
        run(gateway.metrics, call)  # warm: every labelled child made once
        results[f"{kind}: metrics observer"] = run(gateway.metrics, call)
        results[f"{kind}: all observers"] = run(gateway.observer, call)
        results[f"{kind}: no observer (hook calls only)"] = run(_Nothing(), call)
    # The tick that writes what calls added (once a second), after one call of each kind.
    for stream in (False, True):
        run_once = record(stream)
        gateway.metrics.call_started(run_once)
        gateway.metrics.attempt_finished(run_once, route, None, 0.25)
        gateway.metrics.call_finished(run_once)
    started = time.process_time()
    gateway.metrics.sample()
    results["the tick (once a second, not per call)"] = (time.process_time() - started) * 1e6
    return results


class _Nothing:
    def call_started(self, record: Any) -> None: ...
    def attempt_started(self, record: Any, route: Any) -> dict[str, str]:
        return {}

    def attempt_finished(self, record: Any, route: Any, error: Any, seconds: float) -> None: ...
    def call_finished(self, record: Any) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="one JSON object (internal)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(_measure(args.calls)))
        return
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tollway-bench-metrics-") as files:
        for mode, extra in (("memory", {}), ("files", {FILES_ENV: files})):
            env = {k: v for k, v in os.environ.items() if k != FILES_ENV} | extra
            out = subprocess.run(
                [sys.executable, __file__, "--calls", str(args.calls), "--json"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
    print(f"CPU microseconds per call (best of 5 runs of {args.calls} calls)\n")
    print(f"{'':42} {'memory':>8} {'files':>8}")
    for name in rows["memory"]:
        print(f"{name:42} {rows['memory'][name]:8.2f} {rows['files'][name]:8.2f}")


if __name__ == "__main__":
    main()
