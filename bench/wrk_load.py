"""Load from wrk: one POST with a fixed body, repeated over keep-alive connections.

wrk runs pinned to LOAD_CPU with one thread; its latency distribution (``--latency``)
gives p50/p99 and its summary the request count that CPU time is divided by.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from endpoint import Endpoint

from services import LOAD_CPU, BenchError, die_with_parent, taskset

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_json.lua"
_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]  # "50", "75", "90", "99", and "avg", "max" when printed
    non2xx: int
    socket_errors: dict[str, int]
    output: str

    def problems(self, label: str) -> list[str]:
        """What makes this run invalid (errors, nothing completed)."""
        found = []
        if self.non2xx:
            found.append(f"{label}: {self.non2xx} non-2xx responses")
        bad = {k: v for k, v in self.socket_errors.items() if v}
        if bad:
            found.append(f"{label}: socket errors {bad}")
        if self.requests == 0:
            found.append(f"{label}: no request completed")
        return found


def parse(output: str) -> WrkResult:
    """Read wrk's text summary."""

    def time_ms(value: str, unit: str) -> float:
        return float(value) * _TIME_UNITS_MS[unit]

    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not done or not rps:
        raise BenchError(f"cannot parse wrk output:\n{output}")
    latency = {
        pct: time_ms(value, unit)
        for pct, value, unit in re.findall(
            r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M
        )
    }
    if sorted(latency) != ["50", "75", "90", "99"]:
        raise BenchError(f"no latency distribution in wrk output:\n{output}")
    unit = r"([\d.]+)(us|ms|s|m|h)"
    thread_stats = re.search(rf"^\s+Latency\s+{unit}\s+{unit}\s+{unit}", output, re.M)
    if thread_stats:
        avg, avg_unit, _, _, top, top_unit = thread_stats.groups()
        latency |= {"avg": time_ms(avg, avg_unit), "max": time_ms(top, top_unit)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    kinds = ("connect", "read", "write", "timeout")
    return WrkResult(
        requests=int(done.group(1)),
        seconds=time_ms(done.group(2), done.group(3)) / 1e3,
        rps=float(rps.group(1)),
        latency_ms=latency,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors={
            k: int(v) for k, v in zip(kinds, sock.groups() if sock else "0000", strict=True)
        },
        output=output,
    )


def run(endpoint: Endpoint, connections: int, seconds: float, workdir: Path) -> WrkResult:
    """wrk against ``endpoint`` for ``seconds`` with ``connections`` connections."""
    body_file = workdir / f"body-{hashlib.sha1(endpoint.body).hexdigest()[:12]}.json"
    if not body_file.exists():
        body_file.write_bytes(endpoint.body)
    duration = f"{max(1, round(seconds))}s"
    cmd = [*taskset(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{duration}"]
    cmd += ["--latency", "--timeout", "5s", "-s", str(WRK_SCRIPT)]
    for name, value in endpoint.headers:
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(endpoint.url)
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file))
    proc = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=die_with_parent,
    )
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return parse(proc.stdout)
