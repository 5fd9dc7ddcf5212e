"""Compare pooled keep-alive async HTTP clients for Tollway's upstream calls.

What it measures
----------------
A minimal HTTP/1.1 keep-alive server (raw ``asyncio.Protocol`` on uvloop) runs in a
separate process pinned to CPU 1 on 127.0.0.1 with a free port. It answers any POST with
a fixed ~300-byte chat-completion JSON body or, when the request body contains
``"stream": true``, with a chunked ``text/event-stream`` of 6 ``data:`` events followed by
``data: [DONE]`` (the first event goes out with the headers, the others ``--stream-gap-ms``
apart, as an LLM's tokens would).

The client process is pinned to CPU 0 and runs a uvloop event loop. Each candidate keeps
one pooled keep-alive client and POSTs a ~400-byte JSON body with an ``Authorization``
and a ``Content-Type`` header, reading the whole body. The candidates are:

* ``aiohttp``   - ``aiohttp.ClientSession`` over a ``TCPConnector``
* ``httpx``     - ``httpx.AsyncClient`` (HTTP/1.1)
* ``httpx2``    - ``httpx2.AsyncClient`` (the maintained continuation of httpx)
* ``httpcore``  - a raw ``httpcore.AsyncConnectionPool`` (the transport under httpx)
* ``httpcore2`` - a raw ``httpcore2.AsyncConnectionPool`` (the transport under httpx2)
* ``floor``     - reference only, not a candidate: a hand-written ``asyncio.Protocol`` +
  ``httptools`` client with no features, showing what the loop and kernel alone cost.

Every client is configured as the gateway would use it: a pool of 64 keep-alive
connections kept 30 s, explicit connect/read timeouts, no cookie persistence (aiohttp) and
no environment proxies (httpx, httpx2).

Cases, each with a warmup first:

* ``c1``     - one request at a time: CPU per request, median and p99 latency.
* ``c32``    - 32 concurrent requests: CPU per request and throughput.
* ``stream`` - one streamed request at a time, every chunk read as it arrives: CPU per
  streamed request and median time to first chunk.

CPU is the client process's CPU time (``time.process_time_ns``, all threads) over the
measured requests divided by their count; for ``stream`` it includes waking up for each
event, which makes that column the noisiest. Candidates are interleaved: each round runs every
case for every candidate (candidate order rotated per round), and the reported figure is
the median over rounds. Only 127.0.0.1 is contacted; every loop is bounded by a request
count and a timeout, and the server process is stopped at the end (and exits on its own if
this process dies).

How to run
----------
From the repository root::

    .venv/bin/python bench/http_clients.py           # full run, about 7 minutes
    .venv/bin/python bench/http_clients.py --quick   # smoke run, well under a minute

It prints a table and writes ``bench/results/http_clients.json``.
"""

import abc
import argparse
import asyncio
import gc
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

import aiohttp
import httpcore
import httpcore2
import httptools
import httpx
import httpx2
import orjson
import uvloop

HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
SERVER_CPU = 1
CLIENT_CPU = 0
POOL_SIZE = 64
CONCURRENCY = 32  # the c32 case; must stay <= POOL_SIZE
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
KEEPALIVE_S = 30.0
MAX_HEAD_BYTES = 64 * 1024
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "http_clients.json"
NOISY_LOAD = 0.10
REFERENCE_ONLY = frozenset({"floor"})

# ---------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------


def _chat_request(*, stream: bool, size: int = 400) -> bytes:
    """Return an OpenAI-style chat request padded to ``size`` bytes."""
    request: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": ""},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "stream": stream,
    }
    filler = "Summarise the following sentence in five words please. " * 10
    skeleton = len(orjson.dumps(request))
    messages = cast(list[dict[str, str]], request["messages"])
    messages[1]["content"] = filler[: max(0, size - skeleton)]
    return orjson.dumps(request)


REQUEST_BODY = _chat_request(stream=False)
STREAM_REQUEST_BODY = _chat_request(stream=True)
AUTH_VALUE = "Bearer sk-bench-0123456789abcdef0123456789abcdef"
STR_HEADERS = {"Authorization": AUTH_VALUE, "Content-Type": "application/json"}
BYTE_HEADERS = [
    (b"Authorization", AUTH_VALUE.encode()),
    (b"Content-Type", b"application/json"),
]

COMPLETION_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench server."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }
)


def _sse_events() -> list[bytes]:
    """Return the SSE events of one streamed completion, ``[DONE]`` last."""
    events = []
    for i, token in enumerate(["Hello", " from", " the", " bench", " server", "."]):
        chunk = {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
        }
        if i == 5:
            chunk["usage"] = {"prompt_tokens": 42, "completion_tokens": 6, "total_tokens": 48}
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


SSE_EVENTS = _sse_events()
SSE_BODY_LEN = sum(len(e) for e in SSE_EVENTS)

# ---------------------------------------------------------------------------
# Upstream server (runs in its own process)
# ---------------------------------------------------------------------------

JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Request-Id: req_bench0001\r\n"
    b"Content-Length: %d\r\n\r\n" % len(COMPLETION_BODY)
) + COMPLETION_BODY
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"X-Request-Id: req_bench0001\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
STREAM_FRAMES = [b"%x\r\n%b\r\n" % (len(e), e) for e in SSE_EVENTS]
STREAM_FRAMES[0] = STREAM_HEAD + STREAM_FRAMES[0]
STREAM_FRAMES[-1] += b"0\r\n\r\n"
NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
UNSUPPORTED = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection of the fake LLM upstream (Content-Length bodies only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, gap_s: float) -> None:
        self._loop = loop
        self._gap_s = gap_s
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._streaming = False
        self._close_when_done = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._serve_buffered()

    def _reply_and_close(self, response: bytes) -> None:
        if self._transport is not None:
            self._transport.write(response)
            self._transport.close()
        self._buf.clear()

    def _serve_buffered(self) -> None:
        # Every pass either consumes a whole request from the buffer or returns.
        while not self._streaming and self._transport is not None:
            head_end = self._buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    self._reply_and_close(TOO_LARGE)
                return
            head = bytes(self._buf[:head_end]).lower()
            if b"\r\ntransfer-encoding:" in head:
                self._reply_and_close(UNSUPPORTED)
                return
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : end if end >= 0 else len(head)])
            total = head_end + 4 + length
            if len(self._buf) < total:
                return
            body = bytes(self._buf[head_end + 4 : total])
            del self._buf[:total]
            self._close_when_done = b"\r\nconnection: close" in head
            if not head.startswith(b"post "):
                self._transport.write(NOT_ALLOWED)
            elif b'"stream":true' in body or b'"stream": true' in body:
                self._streaming = True
                self._send_frame(0)
                return
            else:
                self._transport.write(JSON_RESPONSE)
            if self._close_when_done:
                self._transport.close()
                return

    def _send_frame(self, index: int) -> None:
        self._timer = None
        if self._transport is None:
            return
        self._transport.write(STREAM_FRAMES[index])
        if index + 1 < len(STREAM_FRAMES):
            if self._gap_s > 0:
                self._timer = self._loop.call_later(self._gap_s, self._send_frame, index + 1)
            else:
                self._send_frame(index + 1)
            return
        self._streaming = False
        if self._close_when_done:
            self._transport.close()
        else:
            self._serve_buffered()


async def _serve(conn: Connection, gap_s: float, lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(loop, gap_s), host=HOST, port=0, backlog=1024
    )
    conn.send(server.sockets[0].getsockname()[1])
    conn.close()
    parent = os.getppid()
    deadline = loop.time() + lifetime_s
    # Stop at the deadline, or as soon as the benchmark process is gone.
    while loop.time() < deadline and os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.close()


def server_main(conn: Connection, cpu: int | None, gap_s: float, lifetime_s: float) -> None:
    """Entry point of the server process: pin, then serve until told or timed out."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_serve(conn, gap_s, lifetime_s))


def process_cpu_ns(pid: int) -> int:
    """CPU time (user + system) of another process, from /proc (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])  # fields 14 and 15: utime, stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def machine_busy_ns() -> int:
    """Busy CPU time of the whole machine, all CPUs, from /proc/stat (10 ms resolution)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ticks = user + nice + system + irq + softirq + steal
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------


class Candidate(abc.ABC):
    """One pooled keep-alive client. ``post`` and ``stream`` return body bytes read."""

    name: str

    def __init__(self, base_url: str) -> None:
        self.url = base_url + PATH

    @abc.abstractmethod
    async def post(self, body: bytes) -> int:
        """POST ``body`` and read the whole response body."""

    @abc.abstractmethod
    async def stream(self, body: bytes, chunk_ns: list[int]) -> int:
        """POST ``body``, read each chunk as it arrives and append its arrival time."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the pool."""


def _check_status(name: str, status: int) -> None:
    if status != 200:
        raise RuntimeError(f"{name}: unexpected status {status}")


class AiohttpCandidate(Candidate):
    name = "aiohttp"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def post(self, body: bytes) -> int:
        async with self.session.post(self.url, data=body, headers=STR_HEADERS) as resp:
            _check_status(self.name, resp.status)
            return len(await resp.read())

    async def stream(self, body: bytes, chunk_ns: list[int]) -> int:
        received = 0
        async with self.session.post(self.url, data=body, headers=STR_HEADERS) as resp:
            _check_status(self.name, resp.status)
            async for chunk in resp.content.iter_any():
                chunk_ns.append(time.perf_counter_ns())
                received += len(chunk)
        return received

    async def close(self) -> None:
        await self.session.close()


class HttpxCandidate(Candidate):
    name = "httpx"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.client: httpx.AsyncClient | httpx2.AsyncClient = httpx.AsyncClient(
            http1=True,
            http2=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=POOL_SIZE,
                max_keepalive_connections=POOL_SIZE,
                keepalive_expiry=KEEPALIVE_S,
            ),
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )

    async def post(self, body: bytes) -> int:
        resp = await self.client.post(self.url, content=body, headers=STR_HEADERS)
        _check_status(self.name, resp.status_code)
        return len(resp.content)

    async def stream(self, body: bytes, chunk_ns: list[int]) -> int:
        received = 0
        async with self.client.stream("POST", self.url, content=body, headers=STR_HEADERS) as resp:
            _check_status(self.name, resp.status_code)
            async for chunk in resp.aiter_bytes():
                chunk_ns.append(time.perf_counter_ns())
                received += len(chunk)
        return received

    async def close(self) -> None:
        await self.client.aclose()


class Httpx2Candidate(HttpxCandidate):
    name = "httpx2"

    def __init__(self, base_url: str) -> None:
        Candidate.__init__(self, base_url)
        self.client = httpx2.AsyncClient(
            http1=True,
            http2=False,
            trust_env=False,
            limits=httpx2.Limits(
                max_connections=POOL_SIZE,
                max_keepalive_connections=POOL_SIZE,
                keepalive_expiry=KEEPALIVE_S,
            ),
            timeout=httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )


TIMEOUT_EXTENSION = {
    "timeout": {
        "connect": CONNECT_TIMEOUT_S,
        "read": READ_TIMEOUT_S,
        "write": READ_TIMEOUT_S,
        "pool": READ_TIMEOUT_S,
    }
}


class HttpcoreCandidate(Candidate):
    name = "httpcore"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.pool: httpcore.AsyncConnectionPool | httpcore2.AsyncConnectionPool = (
            httpcore.AsyncConnectionPool(
                max_connections=POOL_SIZE,
                max_keepalive_connections=POOL_SIZE,
                keepalive_expiry=KEEPALIVE_S,
                http1=True,
                http2=False,
            )
        )

    async def post(self, body: bytes) -> int:
        resp = await self.pool.request(
            "POST", self.url, headers=BYTE_HEADERS, content=body, extensions=TIMEOUT_EXTENSION
        )
        _check_status(self.name, resp.status)
        return len(resp.content)

    async def stream(self, body: bytes, chunk_ns: list[int]) -> int:
        received = 0
        async with self.pool.stream(
            "POST", self.url, headers=BYTE_HEADERS, content=body, extensions=TIMEOUT_EXTENSION
        ) as resp:
            _check_status(self.name, resp.status)
            async for chunk in resp.aiter_stream():
                chunk_ns.append(time.perf_counter_ns())
                received += len(chunk)
        return received

    async def close(self) -> None:
        await self.pool.aclose()


class Httpcore2Candidate(HttpcoreCandidate):
    name = "httpcore2"

    def __init__(self, base_url: str) -> None:
        Candidate.__init__(self, base_url)
        self.pool = httpcore2.AsyncConnectionPool(
            max_connections=POOL_SIZE,
            max_keepalive_connections=POOL_SIZE,
            keepalive_expiry=KEEPALIVE_S,
            http1=True,
            http2=False,
        )


class FloorConnection(asyncio.Protocol):
    """One connection of the reference floor client: httptools parsing, nothing else."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._done = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.keep_alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._error = exc or ConnectionResetError("upstream closed the connection")
        self._wake()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._error = exc
            self._wake()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self._done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def usable(self) -> bool:
        return self._transport is not None and self.keep_alive and self._error is None

    def send(self, request: bytes) -> None:
        if self._transport is None:
            raise ConnectionResetError("connection is closed")
        self._chunks, self._done, self.status = [], False, 0
        self._transport.write(request)

    async def read_some(self) -> tuple[list[bytes], bool]:
        """Wait for body chunks; return them and whether the response is complete."""
        if not self._chunks and not self._done:
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        if not self._chunks and not self._done and self._error is not None:
            raise self._error
        chunks, self._chunks = self._chunks, []
        return chunks, self._done

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class FloorCandidate(Candidate):
    """Reference floor, not a production option: no timeouts, redirects, decoding."""

    name = "floor"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self._host_port = base_url.removeprefix("http://")
        host, port = self._host_port.rsplit(":", 1)
        self._addr = (host, int(port))
        self._idle: list[FloorConnection] = []

    async def _exchange(self, body: bytes, chunk_ns: list[int] | None) -> int:
        conn = self._idle.pop() if self._idle else None
        if conn is None:
            _, conn = await self._loop_connect()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {self._host_port}\r\n"
            f"Authorization: {AUTH_VALUE}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        conn.send(head.encode() + body)
        received = 0
        done = False
        while not done:
            chunks, done = await conn.read_some()
            for chunk in chunks:
                if chunk_ns is not None:
                    chunk_ns.append(time.perf_counter_ns())
                received += len(chunk)
        _check_status(self.name, conn.status)
        if conn.usable:
            self._idle.append(conn)
        else:
            conn.close()
        return received

    async def _loop_connect(self) -> tuple[asyncio.BaseTransport, FloorConnection]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return await loop.create_connection(FloorConnection, *self._addr)

    async def post(self, body: bytes) -> int:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await self._exchange(body, None)

    async def stream(self, body: bytes, chunk_ns: list[int]) -> int:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await self._exchange(body, chunk_ns)

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


CANDIDATES: dict[str, Callable[[str], Candidate]] = {
    "aiohttp": AiohttpCandidate,
    "httpx": HttpxCandidate,
    "httpx2": Httpx2Candidate,
    "httpcore": HttpcoreCandidate,
    "httpcore2": Httpcore2Candidate,
    "floor": FloorCandidate,
}

# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------


@dataclass
class Settings:
    rounds: int
    requests: int
    concurrent_requests: int
    concurrency: int
    stream_requests: int
    stream_gap_ms: float
    case_timeout_s: float


@dataclass
class CaseResult:
    requests: int
    cpu_us_per_req: float
    wall_s: float
    req_per_s: float
    server_busy: float
    other_load: float  # share of the machine's CPU used by anything but this benchmark
    p50_us: float | None = None
    p99_us: float | None = None
    chunks_per_req: float | None = None


@dataclass
class Measured:
    """Per candidate and case: every round's result, then the per-metric medians."""

    rounds: list[CaseResult] = field(default_factory=list)

    def median(self, metric: str) -> float | None:
        values = [getattr(r, metric) for r in self.rounds if getattr(r, metric) is not None]
        return statistics.median(values) if values else None


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


class Bench:
    def __init__(self, settings: Settings, server_pid: int) -> None:
        self.settings = settings
        self.server_pid = server_pid

    async def _timed(
        self, run: Callable[[], Awaitable[int]], requests: int, expected_bytes: int
    ) -> CaseResult:
        """Run ``run`` (which performs ``requests`` requests) and time it; check bytes."""
        gc.collect()
        machine0 = machine_busy_ns()
        server_cpu0 = process_cpu_ns(self.server_pid)
        cpu0 = time.process_time_ns()
        wall0 = time.perf_counter_ns()
        async with asyncio.timeout(self.settings.case_timeout_s):
            received = await run()
        wall = time.perf_counter_ns() - wall0
        cpu = time.process_time_ns() - cpu0
        server_cpu = process_cpu_ns(self.server_pid) - server_cpu0
        others = machine_busy_ns() - machine0 - cpu - server_cpu
        if received != requests * expected_bytes:
            raise RuntimeError(f"read {received} bytes, expected {requests * expected_bytes}")
        return CaseResult(
            requests=requests,
            cpu_us_per_req=cpu / requests / 1e3,
            wall_s=wall / 1e9,
            req_per_s=requests / (wall / 1e9),
            server_busy=server_cpu / wall,
            other_load=max(0.0, others / (wall * (os.cpu_count() or 1))),
        )

    async def case_c1(self, cand: Candidate) -> CaseResult:
        n = self.settings.requests
        for _ in range(max(50, n // 20)):
            await cand.post(REQUEST_BODY)
        latencies = [0] * n

        async def run() -> int:
            received = 0
            for i in range(n):
                start = time.perf_counter_ns()
                received += await cand.post(REQUEST_BODY)
                latencies[i] = time.perf_counter_ns() - start
            return received

        result = await self._timed(run, n, len(COMPLETION_BODY))
        latencies.sort()
        result.p50_us = statistics.median(latencies) / 1e3
        result.p99_us = percentile(latencies, 0.99) / 1e3
        return result

    async def case_concurrent(self, cand: Candidate) -> CaseResult:
        n, width = self.settings.concurrent_requests, self.settings.concurrency

        async def run_batch(count: int) -> int:
            per_worker = [count // width + (1 if w < count % width else 0) for w in range(width)]

            async def worker(k: int) -> int:
                return sum([await cand.post(REQUEST_BODY) for _ in range(k)])

            return sum(await asyncio.gather(*(worker(k) for k in per_worker)))

        await run_batch(max(width * 4, n // 20))
        result = await self._timed(lambda: run_batch(n), n, len(COMPLETION_BODY))
        return result

    async def case_stream(self, cand: Candidate) -> CaseResult:
        n = self.settings.stream_requests
        for _ in range(max(20, n // 20)):
            await cand.stream(STREAM_REQUEST_BODY, [])
        ttfc = [0] * n
        chunks = 0

        async def run() -> int:
            nonlocal chunks
            received = 0
            for i in range(n):
                arrivals: list[int] = []
                start = time.perf_counter_ns()
                received += await cand.stream(STREAM_REQUEST_BODY, arrivals)
                ttfc[i] = arrivals[0] - start
                chunks += len(arrivals)
            return received

        result = await self._timed(run, n, SSE_BODY_LEN)
        ttfc.sort()
        result.p50_us = statistics.median(ttfc) / 1e3
        result.p99_us = percentile(ttfc, 0.99) / 1e3
        result.chunks_per_req = chunks / n
        return result


CASES = ("c1", "c32", "stream")


async def run_benchmark(
    names: list[str], settings: Settings, port: int, server_pid: int
) -> dict[str, dict[str, Measured]]:
    base_url = f"http://{HOST}:{port}"
    bench = Bench(settings, server_pid)
    candidates = [CANDIDATES[name](base_url) for name in names]
    results = {c.name: {case: Measured() for case in CASES} for c in candidates}
    runners = {
        "c1": bench.case_c1,
        "c32": bench.case_concurrent,
        "stream": bench.case_stream,
    }
    try:
        for rnd in range(settings.rounds):
            shift = rnd % len(candidates)
            order = candidates[shift:] + candidates[:shift]
            for case in CASES:
                for cand in order:
                    result = await runners[case](cand)
                    results[cand.name][case].rounds.append(result)
                    print(
                        f"  round {rnd + 1}/{settings.rounds} {case:<6} {cand.name:<10}"
                        f" {result.cpu_us_per_req:8.1f} us CPU/req"
                        f" {result.req_per_s:9.0f} req/s"
                        f"  server busy {result.server_busy:4.0%}"
                        f"  other load {result.other_load:4.0%}",
                        flush=True,
                    )
    finally:
        for cand in candidates:
            await cand.close()
    return results


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

COLUMNS = [
    # (header, case, metric, is a CPU metric compared across candidates)
    ("c1 CPU us/req", "c1", "cpu_us_per_req", True),
    ("c32 CPU us/req", "c32", "cpu_us_per_req", True),
    ("c32 req/s", "c32", "req_per_s", False),
    ("c1 p50 us", "c1", "p50_us", False),
    ("c1 p99 us", "c1", "p99_us", False),
    ("SSE CPU us/req", "stream", "cpu_us_per_req", True),
    ("SSE TTFC p50 us", "stream", "p50_us", False),
    ("SSE chunks/req", "stream", "chunks_per_req", False),
]


def summarise(results: dict[str, dict[str, Measured]]) -> dict[str, object]:
    """Medians per candidate, CPU ratios to the best real candidate, and the winner."""
    medians = {
        name: {f"{case}.{metric}": by_case[case].median(metric) for _, case, metric, _ in COLUMNS}
        for name, by_case in results.items()
    }
    contenders = [n for n in medians if n not in REFERENCE_ONLY]
    ratios: dict[str, dict[str, float]] = {n: {} for n in medians}
    best: dict[str, str] = {}
    for _, case, metric, is_cpu in COLUMNS:
        key = f"{case}.{metric}"
        if not is_cpu or not contenders:
            continue
        best[key] = min(contenders, key=lambda n: medians[n][key] or math.inf)
        best_value = medians[best[key]][key] or math.nan
        for name in medians:
            ratios[name][key] = (medians[name][key] or math.nan) / best_value
    overall = {
        n: math.exp(statistics.fmean(math.log(r) for r in ratios[n].values()))
        for n in contenders
        if ratios[n]
    }
    winner = min(overall, key=lambda n: overall[n]) if overall else None
    return {
        "medians": medians,
        "cpu_ratio_to_best": ratios,
        "best_per_metric": best,
        "cpu_ratio_geomean": overall,
        "winner": winner,
    }


def print_table(summary: dict[str, object]) -> None:
    medians = cast(dict[str, dict[str, float | None]], summary["medians"])
    ratios = cast(dict[str, dict[str, float]], summary["cpu_ratio_to_best"])
    overall = cast(dict[str, float], summary["cpu_ratio_geomean"])
    headers = ["client", *(h for h, *_ in COLUMNS), "CPU vs best (geomean)"]
    rows = []
    for name, values in medians.items():
        row = [name + (" (ref)" if name in REFERENCE_ONLY else "")]
        for _, case, metric, is_cpu in COLUMNS:
            key = f"{case}.{metric}"
            value = values[key]
            cell = "-" if value is None else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"
            if is_cpu and key in ratios[name]:
                cell += f" ({ratios[name][key]:.2f}x)"
            row.append(cell)
        row.append(f"{overall[name]:.2f}x" if name in overall else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print()
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()
    winner = summary["winner"]
    if winner is not None:
        runner_up = sorted(overall, key=lambda n: overall[n])[1:2]
        margin = f", next is {runner_up[0]} at {overall[runner_up[0]]:.2f}x" if runner_up else ""
        print(f"Winner on CPU per request (geomean of c1, c32, SSE): {winner}{margin}")
    print("Figures are medians over rounds; ratios are to the best non-reference client.")


def library_versions() -> dict[str, str]:
    packages = ["aiohttp", "httpx", "httpx2", "httpcore", "httpcore2", "httptools", "h11"]
    packages += ["anyio", "uvloop", "orjson"]
    return {p: version(p) for p in packages}


def aiohttp_has_c_extensions() -> bool:
    from aiohttp import http_parser

    return http_parser.HttpResponseParser is not http_parser.HttpResponseParserPy


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4000, help="c1 requests per round")
    parser.add_argument("--concurrent-requests", type=int, default=8000)
    parser.add_argument("--stream-requests", type=int, default=2000)
    parser.add_argument("--stream-gap-ms", type=float, default=1.0, help="delay between SSE events")
    parser.add_argument("--case-timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument(
        "--only", default=",".join(CANDIDATES), help="comma-separated candidates to run"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--quick", action="store_true", help="small counts for a smoke run (numbers are noisy)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.concurrent_requests = 1, 400, 800
        args.stream_requests = 100
    unknown = set(args.only.split(",")) - set(CANDIDATES)
    if unknown:
        parser.error(f"unknown candidates: {sorted(unknown)}; choose from {list(CANDIDATES)}")
    counts = (args.rounds, args.requests, args.concurrent_requests, args.stream_requests)
    if min(counts) < 1:
        parser.error("counts must be >= 1")
    return args


def pin_cpus() -> tuple[int | None, bool]:
    """Pick the server's CPU and pin this process; fall back to no pinning."""
    available = os.sched_getaffinity(0)
    if {SERVER_CPU, CLIENT_CPU} <= available:
        os.sched_setaffinity(0, {CLIENT_CPU})
        return SERVER_CPU, True
    print(f"warning: CPUs {CLIENT_CPU} and {SERVER_CPU} not both available; not pinning")
    return None, False


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = args.only.split(",")
    settings = Settings(
        rounds=args.rounds,
        requests=args.requests,
        concurrent_requests=args.concurrent_requests,
        concurrency=CONCURRENCY,
        stream_requests=args.stream_requests,
        stream_gap_ms=args.stream_gap_ms,
        case_timeout_s=args.case_timeout,
    )
    server_cpu, pinned = pin_cpus()
    # The server outlives the whole run at most by this much; it also exits with us.
    lifetime_s = 60.0 + settings.rounds * len(names) * len(CASES) * settings.case_timeout_s

    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    server = ctx.Process(
        target=server_main,
        args=(sender, server_cpu, settings.stream_gap_ms / 1e3, lifetime_s),
        name="bench-upstream",
        daemon=True,
    )
    server.start()
    sender.close()
    try:
        if not receiver.poll(30):
            raise RuntimeError("the upstream server did not start within 30 s")
        port = cast(int, receiver.recv())
        assert server.pid is not None
        print(
            f"upstream on {HOST}:{port} (pid {server.pid}); candidates: {', '.join(names)}; "
            f"request body {len(REQUEST_BODY)} B, response {len(COMPLETION_BODY)} B, "
            f"SSE {len(SSE_EVENTS)} events / {SSE_BODY_LEN} B",
            flush=True,
        )
        started = time.perf_counter()
        results = uvloop.run(run_benchmark(names, settings, port, server.pid))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.join(5)
        if server.is_alive():
            server.kill()
            server.join(5)

    summary = summarise(results)
    print_table(summary)
    busiest = max(
        r.other_load for by_case in results.values() for m in by_case.values() for r in m.rounds
    )
    if busiest > NOISY_LOAD:
        print(
            f"warning: other processes used up to {busiest:.0%} of the machine's CPU during a "
            "case; figures may be inflated (see other_load per round in the JSON)"
        )
    report = {
        "benchmark": "http_clients",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cpus_pinned": pinned,
            "aiohttp_c_extensions": aiohttp_has_c_extensions(),
            "versions": library_versions(),
        },
        "settings": asdict(settings),
        "payload_bytes": {
            "request": len(REQUEST_BODY),
            "response": len(COMPLETION_BODY),
            "sse_body": SSE_BODY_LEN,
            "sse_events": len(SSE_EVENTS),
        },
        "summary": summary,
        "rounds": {
            name: {case: [asdict(r) for r in m.rounds] for case, m in by_case.items()}
            for name, by_case in results.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
