"""The targets Tollway is held to, each checked against the floor measured in the same run.

One core, 32 connections: master key <= 1.5x the floor's CPU per request; a virtual key
with budget and limits <= 2x; a translated call <= 2x. One connection: added p50 <= the
floor's added p50 + 0.15 ms, p99 <= 2 ms. First streamed token <= the floor's + 0.2 ms.
Resident memory <= 100 MB after the load, budgets on.
"""

from __future__ import annotations

from dataclasses import dataclass

from measure import Measurements
from variants import FLOOR, FLOOR_STREAM, Plan

CPU_RATIOS = (("master", 1.5), ("vkey_budget", 2.0), ("translated", 2.0))
ADDED_P50_SLACK_MS = 0.15
P99_LIMIT_MS = 2.0
TTFT_SLACK_MS = 0.2
RSS_LIMIT_MB = 100.0


@dataclass(frozen=True)
class Verdict:
    """One target, what was measured, and whether it was met (None: not measured)."""

    target: str
    measured: str
    limit: str
    passed: bool | None

    @property
    def word(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


def _check(value: float | None, limit: float | None) -> bool | None:
    return None if value is None or limit is None else value <= limit


def _fmt(value: float | None, digits: int, unit: str) -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def added_p50(m: Measurements, key: str, direct: str) -> float | None:
    """p50 at c=1 through the proxy minus p50 calling the fake upstream directly."""
    via, base = m.median(key, "p50_ms"), m.median(direct, "p50_ms")
    return None if via is None or base is None else via - base


def verdicts(m: Measurements, plan: Plan, rss_mb: float | None) -> list[Verdict]:
    """Every target, in the order the table prints them."""
    labels = {v.key: v.label for v in (*plan.loaded, *plan.streamed)}
    out: list[Verdict] = []
    floor_cpu = m.median(FLOOR, "cpu_us")
    for key, limit in CPU_RATIOS:
        cpu = m.median(key, "cpu_us")
        ratio = cpu / floor_cpu if cpu is not None and floor_cpu else None
        out.append(
            Verdict(
                f"{labels[key]}: CPU/request, c=32",
                f"{_fmt(ratio, 2, 'x')} ({_fmt(cpu, 0, ' us')})",
                f"<= {limit}x floor ({_fmt(floor_cpu, 0, ' us')})",
                _check(ratio, limit),
            )
        )
    floor_added = added_p50(m, FLOOR, "direct_chat")
    for variant in plan.loaded:
        if not variant.is_tollway:
            continue
        added = added_p50(m, variant.key, variant.direct)
        bound = None if floor_added is None else floor_added + ADDED_P50_SLACK_MS
        out.append(
            Verdict(
                f"{variant.label}: added p50, c=1",
                _fmt(added, 3, " ms"),
                f"<= {_fmt(bound, 3, ' ms')} (floor {_fmt(floor_added, 3, '')} + 0.15)",
                _check(added, bound),
            )
        )
        p99 = m.median(variant.key, "p99_ms")
        out.append(
            Verdict(
                f"{variant.label}: p99, c=1",
                _fmt(p99, 3, " ms"),
                f"<= {P99_LIMIT_MS} ms",
                _check(p99, P99_LIMIT_MS),
            )
        )
    floor_ttft = m.median(FLOOR_STREAM, "ttft_ms")
    for variant in plan.streamed:
        if not variant.is_tollway:
            continue
        ttft = m.median(variant.key, "ttft_ms")
        bound = None if floor_ttft is None else floor_ttft + TTFT_SLACK_MS
        out.append(
            Verdict(
                f"{variant.label}: first token p50",
                _fmt(ttft, 3, " ms"),
                f"<= {_fmt(bound, 3, ' ms')} (floor {_fmt(floor_ttft, 3, '')} + 0.2)",
                _check(ttft, bound),
            )
        )
    out.append(
        Verdict(
            "Tollway RSS after the load, budgets on",
            _fmt(rss_mb, 1, " MB"),
            f"<= {RSS_LIMIT_MB:.0f} MB",
            _check(rss_mb, RSS_LIMIT_MB),
        )
    )
    return out
