"""Tollway benchmark driver (`make bench`).

Measures, in one run and side by side, a bare floor proxy (bench/floor.py) and Tollway's
paths: master key, virtual key, virtual key with budget + rpm + tpm, an OpenAI client on
an Anthropic-served model, a /v1/responses call, and streams. Each proxy runs alone on
one core; the fake upstream (bench/fake_upstream.py), wrk and the streaming client share
the other. Every figure is a median over rounds, and every Tollway path is reported with
its ratio to the floor and checked against its target (bench/targets.py).

Modules: services (child processes, pinning), stack (the processes under test),
variants (what is measured), measure (rounds), wrk_load and client (load generators),
procstat (/proc), targets and report (output).

Exit status: 0 when the run completed (targets are reported, not enforced), 1 when it
is not valid (errors, a process died), 2 when it could not start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import measure
import procstat
import report
import targets
import tracing_cost
import variants
from stack import running_stack

from services import CAN_PIN, LOAD_CPU, BenchError, log

QUIET_BUSY_SHARE = 0.10  # machine busier than this before the start: say so


def parse_args(argv: Sequence[str] | None) -> tuple[measure.Options, argparse.Namespace]:
    p = argparse.ArgumentParser(description="Benchmark Tollway against a bare floor proxy.")
    p.add_argument("--quick", action="store_true", help="one short round (~1 minute)")
    p.add_argument("--rounds", type=int, help="rounds; figures are medians (default 3)")
    p.add_argument("--load-duration", type=int, help="seconds of each c=32 run (default 5)")
    p.add_argument("--duration", type=int, help="seconds of each c=1 run (default 4)")
    p.add_argument("--streams", type=int, help="streams per variant per round (default 300)")
    p.add_argument(
        "--tollway",
        type=Path,
        default=Path(sys.executable).parent / "tollway",
        help="the tollway executable (default: next to this Python)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and config afterwards")
    p.add_argument(
        "--skip-tracing", action="store_true", help="leave out the tracing cost (off and on)"
    )
    p.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        metavar="SECONDS",
        help="wait up to this long for other CPU load on the machine to stop (default: don't)",
    )
    a = p.parse_args(argv)
    if not os.access(a.tollway, os.X_OK):
        p.error(f"{a.tollway} is not executable (install the project first: make)")
    opts = measure.Options(
        rounds=a.rounds or (1 if a.quick else 3),
        load_s=a.load_duration or (2 if a.quick else 5),
        latency_s=a.duration or (2 if a.quick else 4),
        streams=a.streams or (50 if a.quick else 300),
        warmup_s=1,
    )
    if min(opts.rounds, opts.load_s, opts.latency_s, opts.streams) < 1:
        p.error("rounds, durations and streams must be positive")
    return opts, a


def wait_for_quiet_machine(max_wait_s: int) -> float:
    """Fraction of the machine busy before the start; waits up to max_wait_s for it to drop."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = procstat.machine_busy(1.0)
        if busy < QUIET_BUSY_SHARE or time.monotonic() >= deadline:
            return busy
        log(f"machine is {busy:.0%} busy with other work; waiting for it to calm down")


def _tracing(quick: bool) -> tracing_cost.TracingCost | None:
    """What OpenTelemetry tracing costs a call, off and on (``bench/tracing_cost.py``),
    measured after the main run, with its own gateways."""
    log("tracing cost: off and on")
    options = (
        tracing_cost.Options(rounds=2, calls=300, hook_calls=5000)
        if quick
        else tracing_cost.Options(rounds=3)
    )
    try:
        return tracing_cost.measure(options)
    except (BenchError, OSError, RuntimeError) as exc:
        log(f"tracing cost not measured: {exc}")
        return None


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    opts, args = parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install -y wrk)")
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)  # unwind through the finally blocks that stop children
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})  # the streaming client runs beside wrk
    else:
        log("fewer than 2 CPUs: running unpinned; numbers will be noisy")

    info = report.machine_info()
    info["rounds"] = opts.rounds
    info["options"] = vars(args) | {"tollway": str(args.tollway)}
    info["busy_before_start"] = busy = wait_for_quiet_machine(args.wait_quiet)
    notes: list[str] = []
    if busy >= QUIET_BUSY_SHARE:
        notes.append(f"the machine was {busy:.0%} busy with other work before the run")
    m = measure.Measurements()
    plan: variants.Plan | None = None
    memory: dict[str, float | bool] = {}
    started = time.monotonic()
    start_counters = procstat.CpuCounters.now()
    try:
        with running_stack(args.tollway, keep_workdir=args.keep_workdir) as stack:
            idle_rss = procstat.sample(stack.gateway.pid).rss_mb
            plan = variants.plan(stack)
            m = measure.run(stack, plan, opts)
            memory = measure.memory(stack) | {"tollway_idle_rss_mb": idle_rss}
            ours = measure.cpu_of(stack)
            end = procstat.CpuCounters.now()
        capacity = (end.at - start_counters.at) * (os.cpu_count() or 1)
        ours += end.driver_s - start_counters.driver_s
        foreign = max(0.0, end.busy_s - start_counters.busy_s - ours) / capacity
        info["foreign_cpu_share"] = round(foreign, 3)
        if foreign > 0.05:
            notes.append(
                f"other processes used {foreign:.0%} of the machine's CPU during the run: "
                "expect noise (rerun on a quiet machine, or with --wait-quiet)"
            )
    except BenchError as exc:
        m.errors.append(str(exc))
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    info["machine_notes"] = notes

    tracing = None if args.skip_tracing else _tracing(args.quick)
    if tracing is not None:
        info["tracing"] = tracing.as_dict()
        if tracing.sdk_loaded_when_off:
            m.errors.append("a gateway without a traces endpoint loaded the OpenTelemetry SDK")
    rss = memory.get("tollway_rss_mb")
    verdicts = targets.verdicts(m, plan, float(rss) if rss is not None else None) if plan else []
    text = report.render(info, m, plan, verdicts, memory)
    if tracing is not None:
        text += "\n" + tracing.markdown()
    dated = report.write(info, m, verdicts, memory, text)
    print(text)
    log(f"done in {info['elapsed_s']}s; wrote {dated} and latest.{{md,json}}")
    return 0 if not m.errors else 1


if __name__ == "__main__":
    sys.exit(main())
