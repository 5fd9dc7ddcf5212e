"""Tollway benchmark driver (`make bench`).

Starts a fake OpenAI-compatible upstream (bench/fake_upstream.py) and one Tollway
process, pins them to separate cores, drives load with wrk and a small Python
streaming client, and reports what the gateway adds on top of calling the
upstream directly:

  latency_c1      added p50/p99 latency at concurrency 1, non-streamed (wrk)
  throughput_c32  requests/s at concurrency 32 and gateway CPU time per request (wrk)
  stream_ttft     added time to first SSE event, sequential streamed requests (Python)
  memory          gateway memory (RSS, private) at start and after the load

Scenarios are entries in SCENARIOS: a function that takes the running Bench and
returns metrics, so new ones (Anthropic translation, virtual keys, metering)
are one function and one table row each.

Results: a markdown table on stdout, bench/results/latest.{md,json}.
Exit status: 0 when the run completed (targets are reported, not enforced),
1 when something broke (gateway errors, non-2xx responses, a process died).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post_json.lua"
FAKE_UPSTREAM = BENCH_DIR / "fake_upstream.py"

HOST = "127.0.0.1"
MASTER_KEY = "sk-bench-master-key-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-fake"
MODEL = "bench-model"
TRANSLATED_MODEL = "bench-claude"  # served by the fake's Anthropic API, called in OpenAI's
GATEWAY_CPU = 0
LOAD_CPU = 1  # fake upstream, wrk and the Python client share this core
QUIET_BUSY_SHARE = 0.10  # machine busier than this before the start: warn
# Decided once, before the driver pins itself to LOAD_CPU.
CPUS_AVAILABLE = len(os.sched_getaffinity(0))
CAN_PIN = CPUS_AVAILABLE >= 2 and shutil.which("taskset") is not None

# A realistic ~500-byte chat request.
CHAT_REQUEST: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {
            "role": "system",
            "content": "You are a concise assistant for a travel company. Answer in one short "
            "sentence, be accurate, and do not add any extra commentary or follow-up questions.",
        },
        {
            "role": "user",
            "content": "What is the capital of France? I am planning a long weekend trip there "
            "next month with my family and two kids, and would like to know which city we "
            "should fly into.",
        },
    ],
    "temperature": 0.2,
    "max_tokens": 64,
    "top_p": 1,
    "user": "bench-user-0001",
}


def chat_body(*, stream: bool) -> bytes:
    body = dict(CHAT_REQUEST, stream=True) if stream else CHAT_REQUEST
    return json.dumps(body, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- small helpers


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if CAN_PIN else []


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the driver dies without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The benchmark cannot continue (a process died, the gateway returned errors, ...)."""


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # utime+stime (+ reaped children) of the whole process tree
    rss_mb: float  # VmRSS summed over the tree
    hwm_mb: float  # VmHWM (peak RSS) summed over the tree
    uss_mb: float  # private memory (Private_Clean + Private_Dirty): not shared with anyone
    processes: int
    threads: int


def _stat_fields(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data.rsplit(")", 1)[1].split()  # fields after "(comm)": state is index 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += children
        frontier = children
    return tree


def sample_process(root: int) -> ProcSample:
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = rss = hwm = uss = 0.0
    threads = 0
    pids = _descendants(root)
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            cpu += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "VmRSS":
                    rss += int(value.split()[0]) / 1024
                elif key == "VmHWM":
                    hwm += int(value.split()[0]) / 1024
                elif key == "Threads":
                    threads += int(value)
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    uss += int(value.split()[0]) / 1024
    return ProcSample(cpu, rss, hwm, uss, len(pids), threads)


@dataclass(frozen=True)
class CpuCounters:
    """Machine-wide busy and steal time (/proc/stat) and this driver's own CPU (incl. wrk)."""

    at: float
    busy_s: float
    steal_s: float
    driver_s: float

    @staticmethod
    def now() -> CpuCounters:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # irq/softirq time is left out: with IRQ time accounting it is charged to no process,
        # and loopback traffic makes plenty of it.
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields[:8]
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: wrk runs
        driver = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return CpuCounters(time.monotonic(), (user + nice + system) / ticks, steal / ticks, driver)


def machine_busy(seconds: float) -> float:
    """Fraction of all CPUs busy over the next `seconds` (for a quiet-machine check)."""
    before = CpuCounters.now()
    time.sleep(seconds)
    after = CpuCounters.now()
    return (after.busy_s - before.busy_s) / ((after.at - before.at) * (os.cpu_count() or 1))


# --------------------------------------------------------------------------- child processes


@dataclass
class Service:
    """A child process (fake upstream or gateway) with its log file."""

    name: str
    cmd: list[str]
    port: int
    health_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, cwd: Path, env: dict[str, str]) -> None:
        log(f"starting {self.name}: {' '.join(self.cmd)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we can kill its children too
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise BenchError(
                f"{self.name} exited (status {code}); last log lines:\n{self.log_tail()}"
            )

    def wait_ready(self, timeout_s: float) -> float:
        """Poll GET health_path until 200; returns seconds waited."""
        start = time.monotonic()
        last = "no answer"
        while time.monotonic() - start < timeout_s:
            self.check_alive()
            conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
            try:
                conn.request("GET", self.health_path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {resp.status}: {body[:200]!r}"
            except OSError as exc:
                last = repr(exc)
            finally:
                conn.close()
            time.sleep(0.05)
        raise BenchError(
            f"{self.name} not ready after {timeout_s:.0f}s (GET {self.health_path}: {last})\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for 5s; killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """Where and what to send: one side (direct or gateway) of a comparison."""

    label: Literal["direct", "gateway"]
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def with_body(self, body: bytes) -> Endpoint:
        return replace(self, body=body)

    def raw_request(self) -> bytes:
        head = [f"POST {self.path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        head += [f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(head).encode() + self.body


def openai_endpoint(label: Literal["direct", "gateway"], port: int, key: str) -> Endpoint:
    headers = (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"))
    return Endpoint(label, port, "/v1/chat/completions", headers, chat_body(stream=False))


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]  # "50", "75", "90", "99", "avg", "max"
    non2xx: int
    socket_errors: dict[str, int]
    output: str


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(output: str) -> WrkResult:
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


# --------------------------------------------------------------------------- HTTP client


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    first_event_s: float | None  # request sent -> first complete SSE event with a data: line
    total_s: float


def has_data_event(buf: bytes) -> bool:
    text = buf.replace(b"\r\n", b"\n")
    pos = 0
    while (end := text.find(b"\n\n", pos)) >= 0:
        if any(line.startswith(b"data:") for line in text[pos:end].split(b"\n")):
            return True
        pos = end + 2
    return False


class HttpClient:
    """Minimal keep-alive HTTP/1.1 client that timestamps the first SSE event."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def send(self, raw: bytes, timeout_s: float = 30.0) -> Reply:
        return await asyncio.wait_for(self._send(raw), timeout_s)

    async def _send(self, raw: bytes) -> Reply:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            self.connects += 1
        reader, writer = self.reader, self.writer
        assert reader is not None
        start = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        while head.startswith(b"HTTP/1.1 1"):  # 100 Continue and friends
            head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()

        body = bytearray()
        first_event_s: float | None = None

        def feed(data: bytes) -> None:
            nonlocal first_event_s
            body.extend(data)
            if first_event_s is None and has_data_event(body):
                first_event_s = time.perf_counter() - start

        keep_alive = "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                feed((await reader.readexactly(size + 2))[:-2])
        elif "content-length" in headers:
            feed(await reader.readexactly(int(headers["content-length"])))
        else:
            feed(await reader.read())
            keep_alive = False
        total_s = time.perf_counter() - start
        if not keep_alive:
            await self.close()
        return Reply(status, headers, bytes(body), first_event_s, total_s)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def check_reply(reply: Reply, *, stream: bool) -> str | None:
    """None if the reply is a valid OpenAI chat completion (or stream), else what is wrong."""
    if reply.status != 200:
        return f"HTTP {reply.status}"
    if not stream:
        try:
            doc = json.loads(reply.body)
            content = doc["choices"][0]["message"]["content"]
            tokens = doc["usage"]["total_tokens"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return f"not a chat.completion with usage ({exc!r})"
        if not isinstance(content, str) or not isinstance(tokens, int):
            return "chat.completion content or usage.total_tokens has the wrong type"
        return None
    if not reply.headers.get("content-type", "").startswith("text/event-stream"):
        return f"content-type {reply.headers.get('content-type')!r}, expected text/event-stream"
    if reply.first_event_s is None:
        return "no SSE data event"
    if b"data: [DONE]" not in reply.body:
        return "stream did not end with data: [DONE]"
    return None


def describe(endpoint: Endpoint, reply: Reply | None, problem: str) -> str:
    status = f"HTTP {reply.status} {reply.headers}" if reply else "no reply"
    body = reply.body[:1500].decode(errors="replace") if reply else ""
    return (
        f"{problem}\n  request: POST {endpoint.url} {dict(endpoint.headers)}\n"
        f"  body: {endpoint.body.decode()}\n  response: {status}\n  response body: {body}"
    )


async def probe(endpoint: Endpoint, *, stream: bool) -> str | None:
    """Send one request; None if fine, else a full description of the failure."""
    client = HttpClient(endpoint.port)
    reply: Reply | None = None
    try:
        reply = await client.send(endpoint.raw_request(), timeout_s=30)
        problem = check_reply(reply, stream=stream)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        problem = f"request failed: {exc!r}"
    finally:
        await client.close()
    return describe(endpoint, reply, problem) if problem else None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Target:
    limit: float  # the checked value must be below this
    on: Literal["added", "gateway"]
    text: str

    def met(self, metric: Metric) -> bool | None:
        value = metric.added if self.on == "added" else metric.gateway
        return None if value is None else value < self.limit


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    direct: float | None
    gateway: float | None
    target: Target | None = None
    show_added: bool = True

    @property
    def added(self) -> float | None:
        if not self.show_added or self.direct is None or self.gateway is None:
            return None
        return self.gateway - self.direct

    def fmt(self, value: float | None) -> str:
        if value is None:
            return "—"
        digits = {"ms": 3, "us": 1, "MB": 1}.get(self.unit, 0)
        text = f"{value:,.{digits}f}"
        return f"{text} {self.unit}" if self.unit else text

    def row(self) -> list[str]:
        target = ""
        if self.target is not None:
            met = self.target.met(self)
            verdict = {True: "met", False: "MISSED", None: "n/a"}[met]
            target = f"{self.target.text} ({self.target.on}): {verdict}"
        return [
            self.name,
            self.fmt(self.direct),
            self.fmt(self.gateway),
            self.fmt(self.added),
            target,
        ]

    def as_json(self) -> dict[str, Any]:
        met = self.target.met(self) if self.target else None
        target = asdict(self.target) if self.target else None
        return {
            "name": self.name,
            "unit": self.unit,
            "direct": self.direct,
            "gateway": self.gateway,
            "added": self.added,
            "target": target,
            "target_met": met,
        }


@dataclass
class ScenarioResult:
    metrics: list[Metric] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # oddities worth a human look
    errors: list[str] = field(default_factory=list)  # the run is broken


# --------------------------------------------------------------------------- the bench


@dataclass(frozen=True)
class Options:
    duration: int  # seconds per latency round
    rounds: int
    load_duration: int  # seconds of the c=32 run
    streams: int
    warmup: int  # seconds of wrk warm-up per side
    tollway: Path | None  # None: direct-only calibration run
    scenarios: tuple[str, ...]
    keep_workdir: bool
    wait_quiet: int  # seconds to wait for other work on the machine to stop


@dataclass
class Bench:
    """Everything a scenario needs: the running processes and how to reach them."""

    opts: Options
    workdir: Path
    upstream: Service
    gateway: Service | None
    direct: Endpoint
    via_gateway: Endpoint | None
    counters_at_start: CpuCounters
    gateway_idle: ProcSample | None

    def sides(self) -> list[Endpoint]:
        return [self.direct] + ([self.via_gateway] if self.via_gateway else [])

    def check_alive(self) -> None:
        self.upstream.check_alive()
        if self.gateway:
            self.gateway.check_alive()

    def server_for(self, side: Endpoint) -> Service:
        """The process that answers this side's requests (the one whose CPU we count)."""
        server = self.upstream if side.label == "direct" else self.gateway
        assert server is not None
        return server

    def foreign_cpu(self) -> dict[str, float]:
        """CPU used by processes that are not part of the benchmark, since the start."""
        start, now = self.counters_at_start, CpuCounters.now()
        ours = now.driver_s - start.driver_s + sample_process(self.upstream.pid).cpu_s
        if self.gateway:
            ours += sample_process(self.gateway.pid).cpu_s
        capacity = (now.at - start.at) * (os.cpu_count() or 1)
        foreign = max(0.0, now.busy_s - start.busy_s - ours)
        return {
            "foreign_cpu_s": foreign,
            "foreign_share": foreign / capacity,
            "steal_share": (now.steal_s - start.steal_s) / capacity,
            "wall_s": now.at - start.at,
        }

    def upstream_stats(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection(HOST, self.upstream.port, timeout=5)
        try:
            conn.request("GET", "/__stats")
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def wrk(self, endpoint: Endpoint, connections: int, seconds: int) -> WrkResult:
        body_file = self.workdir / f"body-{hashlib.sha1(endpoint.body).hexdigest()[:12]}.json"
        if not body_file.exists():
            body_file.write_bytes(endpoint.body)
        cmd = [*taskset(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
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
            preexec_fn=_die_with_parent,
        )
        if proc.returncode != 0:
            raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        self.check_alive()
        return parse_wrk(proc.stdout)


def wrk_problems(result: WrkResult, label: str) -> list[str]:
    problems = []
    if result.non2xx:
        problems.append(f"{label}: {result.non2xx} non-2xx responses")
    bad = {k: v for k, v in result.socket_errors.items() if v}
    if bad:
        problems.append(f"{label}: socket errors {bad}")
    if result.requests == 0:
        problems.append(f"{label}: no request completed")
    return problems


# --------------------------------------------------------------------------- scenarios


def scenario_latency_c1(bench: Bench) -> ScenarioResult:
    """Alternate direct/gateway wrk runs at c=1; medians over rounds of p50 and p99."""
    res = ScenarioResult()
    sides = bench.sides()
    for side in sides:
        log(f"latency c=1: warm-up {side.label} {bench.opts.warmup}s")
        res.errors += wrk_problems(bench.wrk(side, 1, bench.opts.warmup), f"warm-up {side.label}")
    rounds: dict[str, list[dict[str, float]]] = {side.label: [] for side in sides}
    for i in range(bench.opts.rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            server = bench.server_for(side)
            cpu_before = sample_process(server.pid).cpu_s
            result = bench.wrk(side, 1, bench.opts.duration)
            cpu_s = sample_process(server.pid).cpu_s - cpu_before
            res.errors += wrk_problems(result, f"round {i + 1} {side.label}")
            per_req_us = cpu_s / result.requests * 1e6 if result.requests else math.nan
            rounds[side.label].append(
                dict(result.latency_ms, rps=result.rps, cpu_per_request_us=per_req_us)
            )
            log(
                f"latency c=1: round {i + 1}/{bench.opts.rounds} {side.label:7s} "
                f"p50 {result.latency_ms['50']:.3f} ms  p99 {result.latency_ms['99']:.3f} ms"
            )
    res.raw["rounds"] = rounds

    def med(label: str, key: str) -> float | None:
        values = [r[key] for r in rounds.get(label, [])]
        return median(values) if values else None

    target = Target(0.6, "added", "< 0.6 ms")
    res.metrics += [
        Metric(
            "p50 latency, c=1, non-streamed",
            "ms",
            med("direct", "50"),
            med("gateway", "50"),
            target,
        ),
        Metric("p99 latency, c=1, non-streamed", "ms", med("direct", "99"), med("gateway", "99")),
        Metric(
            "CPU per request, c=1 (direct: fake upstream)",
            "us",
            med("direct", "cpu_per_request_us"),
            med("gateway", "cpu_per_request_us"),
            show_added=False,
        ),
    ]
    for label, values in rounds.items():
        p50s = [r["50"] for r in values]
        if len(p50s) > 1 and max(p50s) - min(p50s) > 0.25 * median(p50s):
            res.notes.append(
                f"latency c=1 {label}: p50 varied {min(p50s):.3f}-{max(p50s):.3f} ms across rounds"
            )
    return res


def scenario_throughput_c32(bench: Bench) -> ScenarioResult:
    """wrk c=32; CPU time per request of the serving process from /proc/<pid>/stat."""
    res = ScenarioResult()
    secs = bench.opts.load_duration
    measured: dict[str, dict[str, float]] = {}
    for side in bench.sides():
        server = bench.server_for(side)
        stats_before = bench.upstream_stats()
        before = sample_process(server.pid)
        log(f"throughput c=32: {side.label} {secs}s")
        result = bench.wrk(side, 32, secs)
        after_run = sample_process(server.pid)
        time.sleep(0.5)  # include deferred per-request work (e.g. metering flushes)
        after = sample_process(server.pid)
        upstream_calls = bench.upstream_stats()["requests"] - stats_before["requests"]
        problems = wrk_problems(result, f"c=32 {side.label}")
        res.errors += problems
        cpu_s = after.cpu_s - before.cpu_s
        per_req_us = cpu_s / result.requests * 1e6 if result.requests else math.nan
        measured[side.label] = {
            "requests": result.requests,
            "seconds": result.seconds,
            "rps": result.rps,
            "non2xx": result.non2xx,
            "cpu_s": cpu_s,
            "cpu_s_settle": after.cpu_s - after_run.cpu_s,
            "cpu_utilisation": (after_run.cpu_s - before.cpu_s) / result.seconds,
            "cpu_per_request_us": per_req_us,
            "upstream_calls": upstream_calls,
            **{
                f"latency_{'p' if k.isdigit() else ''}{k}_ms": v
                for k, v in result.latency_ms.items()
            },
        }
        log(
            f"throughput c=32: {side.label} {result.rps:,.0f} req/s, "
            f"{per_req_us:.1f} us CPU/request, non-2xx {result.non2xx}"
        )
        if side.label == "gateway":
            if problems:
                res.errors.append("gateway wrk output:\n" + result.output)
                failure = run_async(probe(side, stream=False))
                if failure:
                    res.errors.append("a single request after the run: " + failure)
            if abs(upstream_calls - result.requests) > 64:
                res.notes.append(
                    f"gateway completed {result.requests} requests but the upstream saw "
                    f"{upstream_calls} (retries, caching or dropped requests?)"
                )
            if measured["gateway"]["cpu_utilisation"] < 0.85:
                res.notes.append(
                    f"gateway used only {measured['gateway']['cpu_utilisation']:.0%} of its core "
                    "at c=32: the load side (CPU 1) may be the bottleneck, not the gateway"
                )
    res.raw = measured

    def get(label: str, key: str) -> float | None:
        return measured[label][key] if label in measured else None

    gw_cpu = get("gateway", "cpu_per_request_us")
    res.metrics += [
        Metric(
            "requests/s, c=32",
            "req/s",
            get("direct", "rps"),
            get("gateway", "rps"),
            show_added=False,
        ),
        Metric(
            "CPU per request, c=32 (direct: fake upstream)",
            "us",
            get("direct", "cpu_per_request_us"),
            gw_cpu,
            Target(300, "gateway", "< 300 us"),
            show_added=False,
        ),
        Metric(
            "requests/s per core (1 / CPU per request)",
            "req/s",
            1e6 / d if (d := get("direct", "cpu_per_request_us")) else None,
            1e6 / gw_cpu if gw_cpu else None,
            show_added=False,
        ),
        Metric(
            "non-2xx responses, c=32",
            "",
            get("direct", "non2xx"),
            get("gateway", "non2xx"),
            Target(1, "gateway", "0"),
            show_added=False,
        ),
    ]
    return res


async def _ttft_runs(sides: list[Endpoint], n: int, warmup: int) -> dict[str, Any]:
    clients = {side.label: HttpClient(side.port) for side in sides}
    raws = {side.label: side.raw_request() for side in sides}
    first: dict[str, list[float]] = {side.label: [] for side in sides}
    total: dict[str, list[float]] = {side.label: [] for side in sides}
    failures: list[str] = []
    try:
        for i in range(warmup + n):
            for side in sides if i % 2 == 0 else sides[::-1]:
                client = clients[side.label]
                reply: Reply | None = None
                try:
                    reply = await client.send(raws[side.label])
                    problem = check_reply(reply, stream=True)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    problem = f"request failed: {exc!r}"
                    await client.close()  # the connection is in an unknown state
                if problem or reply is None:
                    failures.append(describe(side, reply, problem or "no reply"))
                    if len(failures) >= 3:
                        return {"failures": failures}
                    continue
                if i >= warmup and reply.first_event_s is not None:
                    first[side.label].append(reply.first_event_s * 1e3)
                    total[side.label].append(reply.total_s * 1e3)
    finally:
        for client in clients.values():
            await client.close()
    connects = {label: client.connects for label, client in clients.items()}
    return {"first_ms": first, "total_ms": total, "failures": failures, "connects": connects}


def scenario_stream_ttft(bench: Bench) -> ScenarioResult:
    """Sequential streamed requests, interleaved direct/gateway, one keep-alive connection each."""
    res = ScenarioResult()
    sides = [side.with_body(chat_body(stream=True)) for side in bench.sides()]
    log(f"streams: {bench.opts.streams} sequential streamed requests per side")
    data = run_async(_ttft_runs(sides, bench.opts.streams, warmup=min(50, bench.opts.streams)))
    res.errors += data["failures"]
    if "first_ms" not in data:
        return res
    first, total = data["first_ms"], data["total_ms"]
    for label, count in data["connects"].items():
        if count > 1:
            res.notes.append(f"streams {label}: connection not kept alive ({count} connects)")

    def stat(series: dict[str, list[float]], label: str, pct: float) -> float | None:
        values = series.get(label)
        return percentile(values, pct) if values else None

    res.raw = {
        label: {
            "n": len(first[label]),
            "first_p50_ms": stat(first, label, 50),
            "first_p90_ms": stat(first, label, 90),
            "first_p99_ms": stat(first, label, 99),
            "first_max_ms": max(first[label], default=None),
            "total_p50_ms": stat(total, label, 50),
            "total_p99_ms": stat(total, label, 99),
        }
        for label in first
    }
    target = Target(0.6, "added", "< 0.6 ms")
    res.metrics += [
        Metric(
            "time to first chunk p50, streamed",
            "ms",
            stat(first, "direct", 50),
            stat(first, "gateway", 50),
            target,
        ),
        Metric(
            "time to first chunk p99, streamed",
            "ms",
            stat(first, "direct", 99),
            stat(first, "gateway", 99),
        ),
        Metric(
            "whole stream p50, streamed",
            "ms",
            stat(total, "direct", 50),
            stat(total, "gateway", 50),
        ),
    ]
    return res


def _mint_key(bench: Bench, body: dict[str, Any]) -> str:
    """A virtual key from the gateway's management API."""
    assert bench.gateway is not None
    conn = http.client.HTTPConnection(HOST, bench.gateway.port, timeout=10)
    try:
        payload = json.dumps(body)
        headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
        conn.request("POST", "/api/v1/keys", payload, headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        if response.status != 201:
            raise BenchError(f"could not mint a bench key: {response.status} {data}")
        return str(data["key"])
    finally:
        conn.close()


def scenario_paths(bench: Bench) -> ScenarioResult:
    """What each feature on the request path costs: the same non-streamed call through the
    gateway with the master key, a virtual key, a key with a budget and rate limits
    (metering, worst-case reservation, settlement), and an OpenAI-dialect call to a model
    served by an Anthropic-type provider (translation both ways)."""
    res = ScenarioResult()
    if bench.via_gateway is None:
        return res
    plain = _mint_key(bench, {"name": "bench-plain"})
    metered = _mint_key(
        bench,
        {"name": "bench-metered", "max_budget_usd": 1_000_000, "rpm": 10**9, "tpm": 2**31 - 1},
    )
    base = bench.via_gateway

    def with_key(key: str) -> Endpoint:
        headers = (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"))
        return replace(base, headers=headers)

    translated_body = json.loads(base.body)
    translated_body["model"] = TRANSLATED_MODEL
    paths = [
        ("master key, pass-through", base),
        ("virtual key", with_key(plain)),
        ("virtual key + budget + limits", with_key(metered)),
        (
            "OpenAI client -> Anthropic upstream",
            base.with_body(json.dumps(translated_body).encode()),
        ),
    ]
    server = bench.server_for(base)
    secs = max(3, bench.opts.load_duration // 2)
    measured: dict[str, dict[str, float]] = {}
    for label, endpoint in paths:
        failure = run_async(probe(endpoint, stream=False))
        if failure:
            res.errors.append(f"{label}: {failure}")
            continue
        bench.wrk(endpoint, 32, 1)  # warm-up (caches, connection pool)
        before = sample_process(server.pid)
        load = bench.wrk(endpoint, 32, secs)
        time.sleep(0.5)
        after = sample_process(server.pid)
        res.errors += wrk_problems(load, f"{label} c=32")
        latency = bench.wrk(endpoint, 1, max(2, bench.opts.duration // 2))
        cpu_us = (after.cpu_s - before.cpu_s) / load.requests * 1e6 if load.requests else math.nan
        measured[label] = {
            "cpu_per_request_us": cpu_us,
            "rps": load.rps,
            "p50_ms": latency.latency_ms.get("50", math.nan),
        }
        log(
            f"paths: {label}: {cpu_us:.1f} us CPU/request, p50 c=1 {measured[label]['p50_ms']:.3f} ms"
        )
    res.raw = measured
    baseline = measured.get("master key, pass-through", {}).get("cpu_per_request_us")
    for label, values in measured.items():
        res.metrics.append(
            Metric(f"CPU per request, c=32: {label}", "us", baseline, values["cpu_per_request_us"])
        )
    for label, values in measured.items():
        res.metrics.append(
            Metric(f"p50 latency, c=1: {label}", "ms", None, values["p50_ms"], show_added=False)
        )
    res.metrics.append(
        Metric(
            "gateway RSS after these paths (tokenizer loaded by budgets)",
            "MB",
            None,
            sample_process(server.pid).rss_mb,
            show_added=False,
        )
    )
    res.notes.append(
        "paths: the direct column holds the master-key path, so 'added' is what the feature "
        "costs on top of plain pass-through"
    )
    return res


def scenario_memory(bench: Bench) -> ScenarioResult:
    """Resident memory of the gateway (whole process tree) after the load above."""
    res = ScenarioResult()
    if bench.gateway is None:
        return res
    sample = sample_process(bench.gateway.pid)
    idle = bench.gateway_idle
    res.raw = {"after_load": asdict(sample), "at_start": asdict(idle) if idle else None}
    if idle is not None:
        res.metrics.append(
            Metric("gateway RSS at start (idle)", "MB", None, idle.rss_mb, show_added=False)
        )
    res.metrics.append(
        Metric(
            "gateway RSS after load",
            "MB",
            None,
            sample.rss_mb,
            Target(100, "gateway", "< 100 MB"),
            show_added=False,
        )
    )
    res.metrics += [
        Metric("gateway peak RSS (VmHWM)", "MB", None, sample.hwm_mb, show_added=False),
        Metric(
            "gateway private memory (USS) after load", "MB", None, sample.uss_mb, show_added=False
        ),
    ]
    if sample.processes > 1:
        res.notes.append(f"gateway with --workers 1 runs as {sample.processes} processes")
    return res


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Bench], ScenarioResult]


# Order matters: memory is read after the load.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("latency_c1", "Added latency at concurrency 1", scenario_latency_c1),
    Scenario(
        "throughput_c32",
        "Throughput and CPU per request at concurrency 32",
        scenario_throughput_c32,
    ),
    Scenario("stream_ttft", "Streams: added time to first chunk", scenario_stream_ttft),
    Scenario("memory", "Gateway resident memory", scenario_memory),
    Scenario("paths", "What keys, metering and translation cost per request", scenario_paths),
)


# --------------------------------------------------------------------------- setup


def gateway_config(workdir: Path, upstream_port: int) -> Path:
    data_dir = workdir / "data"
    data_dir.mkdir()
    path = workdir / "tollway.yaml"
    path.write_text(
        f"master_key: {MASTER_KEY}\n"
        f"data_dir: {data_dir}\n"
        "providers:\n"
        f'  fake: {{type: openai, base_url: "http://{HOST}:{upstream_port}/v1", '
        f'api_key: "{UPSTREAM_KEY}"}}\n'
        f'  fake-anthropic: {{type: anthropic, base_url: "http://{HOST}:{upstream_port}", '
        f'api_key: "{UPSTREAM_KEY}"}}\n'
        "models:\n"
        f"  - name: {MODEL}\n"
        "    provider: fake\n"
        "    price: {input_mtok: 0.15, output_mtok: 0.6}\n"
        f"  - name: {TRANSLATED_MODEL}\n"
        "    provider: fake-anthropic\n"
        "    price: {input_mtok: 3, output_mtok: 15}\n"
    )
    return path


def clean_env() -> dict[str, str]:
    """The config file is the whole configuration: drop TOLLWAY_* and provider key variables."""
    dropped = ("TOLLWAY_", "OPENAI_", "ANTHROPIC_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


@contextlib.contextmanager
def running_bench(opts: Options) -> Iterator[Bench]:
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    counters = CpuCounters.now()
    services: list[Service] = []
    ok = False
    try:
        up_port = free_port()
        upstream_args = ["--host", HOST, "--port", str(up_port), "--api-key", UPSTREAM_KEY]
        upstream = Service(
            "fake upstream",
            [*taskset(LOAD_CPU), sys.executable, str(FAKE_UPSTREAM), *upstream_args],
            up_port,
            "/health",
            workdir / "upstream.log",
        )
        services.append(upstream)
        upstream.start(cwd=workdir, env=clean_env())
        upstream.wait_ready(15)
        gateway: Service | None = None
        if opts.tollway is not None:
            gw_port = free_port()
            config = gateway_config(workdir, up_port)
            gateway_args = ["--config", str(config), "--host", HOST, "--port", str(gw_port)]
            gateway_args += ["--workers", "1"]
            gateway = Service(
                "gateway",
                [*taskset(GATEWAY_CPU), str(opts.tollway), "serve", *gateway_args],
                gw_port,
                "/health/live",
                workdir / "gateway.log",
            )
            services.append(gateway)
            gateway.start(cwd=workdir, env=clean_env())
            log(f"gateway ready after {gateway.wait_ready(60):.2f}s")
            time.sleep(0.2)
        bench = Bench(
            opts,
            workdir,
            upstream,
            gateway,
            openai_endpoint("direct", up_port, UPSTREAM_KEY),
            openai_endpoint("gateway", gateway.port, MASTER_KEY) if gateway else None,
            counters,
            sample_process(gateway.pid) if gateway else None,
        )
        yield bench
        ok = True
    finally:
        for service in reversed(services):
            service.stop()
        if ok and not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs and config kept in {workdir}")


def preflight(bench: Bench) -> list[str]:
    """One non-streamed and one streamed request per side must succeed before any load."""
    problems = []
    for side in bench.sides():
        for stream in (False, True):
            endpoint = side.with_body(chat_body(stream=stream)) if stream else side
            failure = run_async(probe(endpoint, stream=stream))
            if failure:
                kind = "streamed" if stream else "non-streamed"
                problems.append(f"preflight {side.label} {kind}: {failure}")
    return problems


# --------------------------------------------------------------------------- reporting


def machine_info(opts: Options) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    git = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        tollway_version = importlib.metadata.version("tollway")
    except importlib.metadata.PackageNotFoundError:
        tollway_version = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_available": CPUS_AVAILABLE,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split(" [")[0].strip(),
        "tollway": tollway_version,
        "git_commit": git.stdout.strip() or None,
        "git_dirty": bool(dirty.stdout.strip()),  # the gateway ran uncommitted src/ changes
        "pinning": (
            f"gateway CPU {GATEWAY_CPU}; upstream, wrk, client CPU {LOAD_CPU}"
            if CAN_PIN
            else "none (fewer than 2 CPUs or no taskset)"
        ),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
    }


def markdown_table(rows: list[list[str]]) -> str:
    header = ["metric", "direct", "via gateway", "added", "target"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + [line(r) for r in rows]
    )


def report(
    info: dict[str, Any],
    results: dict[str, ScenarioResult],
    fatal: str | None,
    machine_notes: list[str],
) -> str:
    rows = [m.row() for r in results.values() for m in r.metrics]
    out = ["# Tollway benchmark", ""]
    out.append(
        f"{info['date']} · {info['nproc']} CPUs ({info['cpu_model']}) · Python {info['python']} · "
        f"{info['wrk']} · tollway {info['tollway']} · commit {info['git_commit']}"
        + (" + uncommitted src/ changes" if info["git_dirty"] else "")
    )
    out.append(f"Pinning: {info['pinning']}.")
    out += ["", markdown_table(rows) if rows else "(no metrics)", ""]
    out.append(
        "Latency rows are medians over alternating wrk rounds; 'added' = gateway - direct. "
        "CPU per request is utime+stime of the serving process divided by completed requests "
        "(direct column: the fake upstream itself)."
    )
    notes = machine_notes + [f"{name}: {n}" for name, r in results.items() for n in r.notes]
    errors = [f"{name}: {e}" for name, r in results.items() for e in r.errors]
    if fatal:
        errors.append(fatal)
    if notes:
        out += ["", "Notes:", *[f"- {n}" for n in notes]]
    if errors:
        out += ["", "ERRORS (the run is not valid):", *[f"- {e}" for e in errors]]
    return "\n".join(out) + "\n"


def write_results(
    info: dict[str, Any], results: dict[str, ScenarioResult], text: str, ok: bool
) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    doc = {
        "ok": ok,
        "machine": info,
        "scenarios": {
            name: {
                "metrics": [m.as_json() for m in r.metrics],
                "raw": r.raw,
                "notes": r.notes,
                "errors": r.errors,
            }
            for name, r in results.items()
        },
    }
    (RESULTS_DIR / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (RESULTS_DIR / "latest.md").write_text(text)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> Options:
    names = [s.name for s in SCENARIOS]
    p = argparse.ArgumentParser(description="Benchmark Tollway against a fake upstream.")
    p.add_argument("--quick", action="store_true", help="short smoke run (~15 s)")
    p.add_argument("--duration", type=int, help="seconds per latency round (default 5)")
    p.add_argument("--rounds", type=int, help="latency rounds per side (default 5)")
    p.add_argument("--load-duration", type=int, help="seconds of the c=32 run (default 10)")
    p.add_argument("--streams", type=int, help="streamed requests per side (default 500)")
    p.add_argument(
        "--tollway",
        type=Path,
        default=Path(sys.executable).parent / "tollway",
        help="the tollway executable (default: next to this Python)",
    )
    p.add_argument(
        "--direct-only", action="store_true", help="no gateway: calibrate the harness itself"
    )
    p.add_argument("--scenario", action="append", choices=names, help="run only these (repeatable)")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and config afterwards")
    p.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        metavar="SECONDS",
        help="wait up to this long for other CPU load on the machine to stop (default: don't)",
    )
    a = p.parse_args(argv)
    quick = a.quick
    tollway = None if a.direct_only else a.tollway
    if tollway is not None and not os.access(tollway, os.X_OK):
        p.error(f"{tollway} is not executable (install the project, or use --direct-only)")
    opts = Options(
        duration=a.duration or (1 if quick else 5),
        rounds=a.rounds or (2 if quick else 5),
        load_duration=a.load_duration or (2 if quick else 10),
        streams=a.streams or (50 if quick else 500),
        warmup=1 if quick else 2,
        tollway=tollway,
        scenarios=tuple(a.scenario or names),
        keep_workdir=a.keep_workdir,
        wait_quiet=a.wait_quiet,
    )
    if min(opts.duration, opts.rounds, opts.load_duration, opts.streams) < 1:
        p.error("durations, rounds and streams must be positive")
    return opts


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def wait_for_quiet_machine(max_wait_s: int) -> float:
    """Fraction of the machine busy before we start; waits up to max_wait_s for it to drop."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = machine_busy(1.0)
        if busy < QUIET_BUSY_SHARE or time.monotonic() >= deadline:
            return busy
        log(f"machine is {busy:.0%} busy with other work; waiting for it to calm down")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install -y wrk)")
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)  # unwind through the finally blocks that stop children
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})  # the Python streaming client runs here
    else:
        log("fewer than 2 CPUs: running unpinned; numbers will be noisy")

    info = machine_info(opts)
    machine_notes: list[str] = []
    info["busy_before_start"] = busy = wait_for_quiet_machine(opts.wait_quiet)
    if busy >= QUIET_BUSY_SHARE:
        machine_notes.append(
            f"the machine was {busy:.0%} busy with other work before the run: expect noise"
        )
    results: dict[str, ScenarioResult] = {}
    fatal: str | None = None
    started = time.monotonic()
    try:
        with running_bench(opts) as bench:
            problems = preflight(bench)
            if problems:
                fatal = "\n".join(problems)
            else:
                for scenario in SCENARIOS:
                    if scenario.name not in opts.scenarios:
                        continue
                    log(f"== {scenario.title}")
                    results[scenario.name] = scenario.run(bench)
                    bench.check_alive()
            info["interference"] = foreign = bench.foreign_cpu()
            if bench.gateway is not None:
                info["gateway_log_tail"] = bench.gateway.log_tail(5)
        if foreign["foreign_share"] > 0.05 or foreign["steal_share"] > 0.05:
            machine_notes.append(
                f"other processes used {foreign['foreign_share']:.0%} and the hypervisor stole "
                f"{foreign['steal_share']:.0%} of the machine's CPU during the run: "
                "results are likely disturbed, rerun on a quiet machine"
            )
    except BenchError as exc:
        fatal = str(exc)
    info["elapsed_s"] = round(time.monotonic() - started, 1)

    text = report(info, results, fatal, machine_notes)
    ok = fatal is None and not any(r.errors for r in results.values())
    write_results(info, results, text, ok)
    print(text)
    log(f"done in {info['elapsed_s']}s; wrote {RESULTS_DIR / 'latest.md'} and latest.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
