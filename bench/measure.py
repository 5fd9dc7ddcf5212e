"""Rounds of measurement: every variant once per round, in a rotating order, so that
drift on the machine spreads over all of them; the report takes medians over rounds.

Per round and variant:

  non-streamed   wrk -c32 (CPU per request = process CPU delta / requests, req/s),
                 then wrk -c1 (p50, p99)
  direct         wrk -c1 straight to the fake upstream (the baseline of "added")
  streamed       N sequential streamed requests on one keep-alive connection:
                 time to first SSE event (p50, p99), CPU per stream
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import procstat
import wrk_load
from client import HttpClient, Reply, describe, probe, run_async
from stack import Stack
from variants import Plan, Variant

from services import BenchError, log

SETTLE_S = 0.3  # after a load run: count deferred per-request work (journal flushes)


@dataclass(frozen=True)
class Options:
    rounds: int
    load_s: int  # seconds of each c=32 run
    latency_s: int  # seconds of each c=1 run
    streams: int  # streamed requests per variant per round
    warmup_s: int


@dataclass
class Measurements:
    """Per variant, per metric: one value per round."""

    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the run is invalid
    notes: list[str] = field(default_factory=list)  # worth a look

    def add(self, key: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            self.series.setdefault(key, {}).setdefault(metric, []).append(value)

    def median(self, key: str, metric: str) -> float | None:
        values = self.series.get(key, {}).get(metric)
        return statistics.median(values) if values else None


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def preflight(plan: Plan) -> list[str]:
    """Every variant must answer one request correctly before any load."""
    problems = []
    for variant in (*plan.direct, *plan.loaded, *plan.streamed):
        failure = run_async(probe(variant.endpoint, variant.check))
        if failure:
            problems.append(f"preflight {variant.label}: {failure}")
    return problems


def _cpu(variant: Variant) -> float:
    assert variant.server is not None
    return procstat.sample(variant.server.pid).cpu_s


def load_c32(stack: Stack, variant: Variant, seconds: int, m: Measurements) -> None:
    """Requests/s and CPU per request at 32 connections."""
    calls_before = stack.upstream_requests()
    before = _cpu(variant)
    result = wrk_load.run(variant.endpoint, 32, seconds, stack.workdir)
    busy = _cpu(variant) - before
    time.sleep(SETTLE_S)
    spent = _cpu(variant) - before
    calls = stack.upstream_requests() - calls_before - 1  # the /__stats call itself
    stack.check_alive()
    m.errors += result.problems(f"{variant.label} c=32")
    if abs(calls - result.requests) > 64:
        m.notes.append(
            f"{variant.label}: {result.requests} requests completed but the upstream saw {calls}"
        )
    per_request = spent / result.requests * 1e6 if result.requests else float("nan")
    m.add(
        variant.key,
        {
            "cpu_us": per_request,
            "rps": result.rps,
            "core_busy": busy / result.seconds,
            "c32_p50_ms": result.latency_ms["50"],
        },
    )
    log(
        f"  {variant.label}: c=32 {result.rps:,.0f} req/s, {per_request:.1f} us CPU/request, "
        f"core {busy / result.seconds:.0%} busy"
    )


def latency_c1(stack: Stack, variant: Variant, seconds: int, m: Measurements) -> None:
    """p50 and p99 at one connection."""
    result = wrk_load.run(variant.endpoint, 1, seconds, stack.workdir)
    stack.check_alive()
    m.errors += result.problems(f"{variant.label} c=1")
    m.add(variant.key, {"p50_ms": result.latency_ms["50"], "p99_ms": result.latency_ms["99"]})
    log(
        f"  {variant.label}: c=1 p50 {result.latency_ms['50']:.3f} ms, "
        f"p99 {result.latency_ms['99']:.3f} ms"
    )


async def _streams(variant: Variant, n: int, warmup: int) -> tuple[list[Reply], list[str]]:
    client = HttpClient(variant.endpoint.port)
    raw = variant.endpoint.raw_request()
    replies: list[Reply] = []
    failures: list[str] = []
    try:
        for i in range(warmup + n):
            reply: Reply | None = None
            try:
                reply = await client.send(raw)
                problem = variant.check(reply)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                problem = f"request failed: {exc!r}"
                await client.close()  # the connection is in an unknown state
            if problem or reply is None:
                failures.append(describe(variant.endpoint, reply, problem or "no reply"))
                if len(failures) >= 3:
                    break
            elif i >= warmup:
                replies.append(reply)
    finally:
        await client.close()
    if client.connects > 1:
        failures.append(f"{variant.label}: connection not kept alive ({client.connects} connects)")
    return replies, failures


def streams(stack: Stack, variant: Variant, n: int, m: Measurements) -> None:
    """Time to first token over ``n`` sequential streams."""
    before = _cpu(variant) if variant.server else 0.0
    replies, failures = run_async(_streams(variant, n, warmup=min(20, n)))
    spent = _cpu(variant) - before if variant.server else float("nan")
    stack.check_alive()
    m.errors += failures
    first = [r.first_event_s * 1e3 for r in replies if r.first_event_s is not None]
    if not first:
        return
    values = {
        "ttft_ms": percentile(first, 50),
        "ttft_p99_ms": percentile(first, 99),
        "stream_total_ms": percentile([r.total_s * 1e3 for r in replies], 50),
    }
    if variant.server:
        values["stream_cpu_us"] = spent / (len(replies) + min(20, n)) * 1e6
    m.add(variant.key, values)
    log(f"  {variant.label}: first token p50 {values['ttft_ms']:.3f} ms")


def _rotated(items: tuple[Variant, ...], by: int) -> list[Variant]:
    by %= max(1, len(items))
    return [*items[by:], *items[:by]]


def run(stack: Stack, plan: Plan, opts: Options) -> Measurements:
    """Warm every path, then ``opts.rounds`` rounds over all variants."""
    m = Measurements()
    problems = preflight(plan)
    if problems:
        raise BenchError("\n".join(problems))
    log("warm-up")
    for variant in plan.loaded:
        wrk_load.run(variant.endpoint, 32, opts.warmup_s, stack.workdir)
        # The run ends with calls cut short, whose usage is estimated: the first loads
        # the tokenizer, which must not be counted as a measured request's work.
        assert variant.server is not None
        procstat.wait_idle(variant.server.pid)
    for i in range(opts.rounds):
        log(f"round {i + 1}/{opts.rounds}")
        for variant in _rotated(plan.direct, i):
            if variant.stream:
                streams(stack, variant, opts.streams, m)
            else:
                latency_c1(stack, variant, opts.latency_s, m)
        for variant in _rotated(plan.loaded, i):
            load_c32(stack, variant, opts.load_s, m)
            latency_c1(stack, variant, opts.latency_s, m)
        for variant in _rotated(plan.streamed, i):
            streams(stack, variant, opts.streams, m)
    return m


def memory(stack: Stack) -> dict[str, float | bool]:
    """Resident memory of both proxies now (after the load, budgets on)."""
    gateway, floor = procstat.sample(stack.gateway.pid), procstat.sample(stack.floor.pid)
    return {
        "tollway_rss_mb": gateway.rss_mb,
        "tollway_peak_rss_mb": gateway.hwm_mb,
        "tollway_private_mb": gateway.uss_mb,
        "floor_rss_mb": floor.rss_mb,
        "tokenizer_loaded": procstat.maps_file(stack.gateway.pid, "bpe_openai"),
    }


def cpu_of(stack: Stack) -> float:
    """CPU time of the benchmark's own long-lived processes (interference check)."""
    return sum(procstat.sample(s.pid).cpu_s for s in stack.services())
