"""The report: the machine, one table of every path with its ratio to the floor, one of
first-token times, one of targets (PASS/MISS); markdown on stdout and in
bench/results/, the numbers (medians and every round) as JSON beside it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import Measurements
from targets import Verdict, added_p50
from variants import FLOOR, FLOOR_STREAM, Plan

from services import CAN_PIN, CPUS_AVAILABLE, LOAD_CPU, PROXY_CPU

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    try:
        tollway_version: str | None = importlib.metadata.version("tollway")
    except importlib.metadata.PackageNotFoundError:
        tollway_version = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_available": CPUS_AVAILABLE,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split(" [")[0].strip(),
        "tollway": tollway_version,
        "git_commit": _git("rev-parse", "--short", "HEAD") or None,
        # The gateway ran uncommitted src/ changes.
        "git_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "pinning": (
            f"each proxy alone on CPU {PROXY_CPU}; fake upstream, wrk and client on CPU {LOAD_CPU}"
            if CAN_PIN
            else "none (fewer than 2 CPUs or no taskset)"
        ),
    }


def _num(value: float | None, digits: int = 0, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def paths_table(m: Measurements, plan: Plan) -> str:
    floor_cpu = m.median(FLOOR, "cpu_us")
    rows = []
    for v in plan.loaded:
        cpu = m.median(v.key, "cpu_us")
        ratio = cpu / floor_cpu if cpu is not None and floor_cpu else None
        rows.append(
            [
                v.label,
                _num(cpu, 0, " us"),
                _num(ratio, 2, "x"),
                _num(m.median(v.key, "rps"), 0),
                _num(m.median(v.key, "p50_ms"), 3),
                _num(added_p50(m, v.key, v.direct), 3),
                _num(m.median(v.key, "p99_ms"), 3),
            ]
        )
    for v in plan.direct:
        if not v.stream:
            p50, p99 = m.median(v.key, "p50_ms"), m.median(v.key, "p99_ms")
            rows.append([v.label, "", "", "", _num(p50, 3), "", _num(p99, 3)])
    header = ["path", "CPU/req c=32", "x floor", "req/s c=32", "p50 c=1 ms", "added p50"]
    return table([*header, "p99 c=1 ms"], rows)


def streams_table(m: Measurements, plan: Plan) -> str:
    floor_ttft = m.median(FLOOR_STREAM, "ttft_ms")
    rows = []
    for v in (*plan.streamed, *(d for d in plan.direct if d.stream)):
        ttft = m.median(v.key, "ttft_ms")
        over = ttft - floor_ttft if ttft is not None and floor_ttft is not None else None
        rows.append(
            [
                v.label,
                _num(ttft, 3),
                "" if v.key == FLOOR_STREAM or v.server is None else _num(over, 3),
                _num(m.median(v.key, "ttft_p99_ms"), 3),
                _num(m.median(v.key, "stream_total_ms"), 3),
                _num(m.median(v.key, "stream_cpu_us"), 0),
            ]
        )
    header = ["stream", "first token p50 ms", "over floor", "p99 ms", "whole p50 ms"]
    return table([*header, "CPU/stream us"], rows)


def verdict_table(verdicts: list[Verdict]) -> str:
    rows = [[v.target, v.measured, v.limit, v.word] for v in verdicts]
    return table(["target", "measured", "limit", "result"], rows)


def render(
    info: dict[str, Any],
    m: Measurements,
    plan: Plan | None,
    verdicts: list[Verdict],
    memory: dict[str, Any],
) -> str:
    out = ["# Tollway benchmark", ""]
    out.append(
        f"{info['date']} · {info['nproc']} CPUs ({info['cpu_model']}) · Python "
        f"{info['python']} · {info['wrk']} · tollway {info['tollway']} · commit "
        f"{info['git_commit']}" + (" + uncommitted src/ changes" if info["git_dirty"] else "")
    )
    out += [f"Pinning: {info['pinning']}. Medians of {info['rounds']} rounds.", ""]
    if plan is not None:
        out += [paths_table(m, plan), "", streams_table(m, plan), ""]
    if memory:
        out.append(
            f"Resident memory: Tollway {_num(memory['tollway_idle_rss_mb'], 1)} MB at start, "
            f"{_num(memory['tollway_rss_mb'], 1)} MB after the load "
            f"(private {_num(memory['tollway_private_mb'], 1)} MB, peak "
            f"{_num(memory['tollway_peak_rss_mb'], 1)} MB; tokenizer "
            f"{'loaded' if memory['tokenizer_loaded'] else 'not loaded'}), floor "
            f"{_num(memory['floor_rss_mb'], 1)} MB."
        )
        out.append("")
    if verdicts:
        out += [verdict_table(verdicts), ""]
    out.append(
        "CPU/req: the proxy process's CPU time (utime+stime) over a c=32 wrk run divided by "
        "the requests completed. added p50: p50 through the proxy minus p50 calling the fake "
        "upstream directly (the direct rows). First token: request written to first SSE "
        "data event read, sequential streams on one connection."
    )
    if m.notes or info.get("machine_notes"):
        out += ["", "Notes:", *(f"- {n}" for n in [*info.get("machine_notes", []), *m.notes])]
    if m.errors:
        out += ["", "ERRORS (the run is not valid):", *(f"- {e}" for e in m.errors)]
    return "\n".join(out) + "\n"


def write(
    info: dict[str, Any],
    m: Measurements,
    verdicts: list[Verdict],
    memory: dict[str, Any],
    text: str,
) -> Path:
    """bench/results/latest.{md,json} and a dated copy of the JSON; returns its path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    medians = {
        key: {metric: m.median(key, metric) for metric in series}
        for key, series in m.series.items()
    }
    doc = {
        "ok": not m.errors,
        "machine": info,
        "medians": medians,
        "rounds": m.series,
        "memory": memory,
        "targets": [
            {"target": v.target, "measured": v.measured, "limit": v.limit, "passed": v.passed}
            for v in verdicts
        ],
        "notes": m.notes,
        "errors": m.errors,
    }
    data = json.dumps(doc, indent=2, default=str) + "\n"
    stamp = info["date"].replace(":", "").replace("-", "")[:15]
    dated = RESULTS_DIR / f"bench-{stamp}.json"
    dated.write_text(data)
    (RESULTS_DIR / "latest.json").write_text(data)
    (RESULTS_DIR / "latest.md").write_text(text)
    return dated
