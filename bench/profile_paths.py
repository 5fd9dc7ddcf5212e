"""Where Tollway's CPU goes on one path: py-spy samples the gateway while wrk drives it.

Starts the same processes as `make bench`, drives one variant at 32 connections and
records the gateway with py-spy (a sampling profiler; install it with
``pip install py-spy``, it is not a project dependency). Prints the frames with the most
samples of their own (where the time is spent) and the Tollway frames with the most
samples below them (which step costs it), and keeps the collapsed stacks for a flame
graph (``bench/results/profile-<variant>.txt``).

Run: .venv/bin/python bench/profile_paths.py [--variant master] [--seconds 20] [--py-spy PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import procstat
import variants
import wrk_load
from measure import preflight
from stack import running_stack

from services import CAN_PIN, LOAD_CPU, log

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``pkg/mod.py:12 func``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['line']} {match['func']}"


def summarize(collapsed: str, top: int) -> str:
    """Top frames by own samples, and Tollway frames by samples below them."""
    own: Counter[str] = Counter()
    below: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if frame.startswith("tollway/"):
                below[frame] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "own time (the frame itself):"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    out += ["", "Tollway frames, time spent in them and below:"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in below.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="master", help="master, vkey, vkey_budget, translated, ...")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--rate", type=int, default=500, help="samples per second")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--py-spy", default=shutil.which("py-spy"), help="the py-spy executable")
    p.add_argument("--tollway", type=Path, default=Path(sys.executable).parent / "tollway")
    args = p.parse_args()
    if not args.py_spy:
        p.error("py-spy not found: pip install py-spy, or pass --py-spy PATH")
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})
    RESULTS_DIR.mkdir(exist_ok=True)
    output = RESULTS_DIR / f"profile-{args.variant}.txt"
    with running_stack(args.tollway, keep_workdir=False) as stack:
        plan = variants.plan(stack)
        chosen = [v for v in plan.loaded if v.key == args.variant]
        if not chosen:
            p.error(f"no variant {args.variant!r}: {', '.join(v.key for v in plan.loaded)}")
        problems = preflight(plan)
        if problems:
            log("\n".join(problems))
            return 1
        variant = chosen[0]
        assert variant.server is not None
        # Warm-up; it ends with calls cut short, whose estimates load the tokenizer.
        wrk_load.run(variant.endpoint, 32, 3, stack.workdir)
        procstat.wait_idle(variant.server.pid)
        record = [args.py_spy, "record", "--pid", str(variant.server.pid), "--format", "raw"]
        record += ["--rate", str(args.rate), "--duration", str(args.seconds)]
        record += ["--nonblocking", "--output", str(output)]
        log(f"profiling {variant.label} for {args.seconds}s")
        spy = threading.Thread(target=subprocess.run, args=(record,), kwargs={"check": False})
        spy.start()
        result = wrk_load.run(variant.endpoint, 32, args.seconds + 1, stack.workdir)
        spy.join()
        log(f"{result.requests} requests, {result.rps:,.0f} req/s")
    print(f"# {variant.label}\n")
    print(summarize(output.read_text(), args.top))
    log(f"collapsed stacks in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
