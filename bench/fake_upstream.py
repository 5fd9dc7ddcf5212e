"""A fast fake OpenAI/Anthropic-compatible upstream for benchmarking Tollway.

Raw ``asyncio.Protocol`` HTTP/1.1 server on uvloop: keep-alive, pipelining,
Content-Length and chunked request bodies. Responses are pre-rendered bytes so
the upstream costs as little CPU as possible and the benchmark measures the
gateway, not this file.

Routes:
  POST /v1/chat/completions  OpenAI chat.completion (or SSE chunks when "stream": true)
  POST /v1/messages          Anthropic message (or Anthropic SSE events when "stream": true)
  POST /v1/responses         OpenAI Responses object (or its SSE events when "stream": true)
  GET  /health               200 "ok"
  GET  /__stats              JSON request counters (for sanity checks by the driver)

Run: python bench/fake_upstream.py --port 9001 [--api-key KEY] [--stream-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

from upstream_payloads import (
    anthropic_message,
    anthropic_stream_events,
    dumps,
    loads,
    openai_completion,
    openai_stream_events,
    responses_object,
    responses_stream_events,
)

MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses"})
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024

# --------------------------------------------------------------------------- HTTP framing

REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found"}
REASONS |= {405: b"Method Not Allowed", 413: b"Payload Too Large"}


def full_response(status: int, body: bytes, content_type: bytes, keep_alive: bool) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
            b"content-type: " + content_type + b"\r\n",
            b"content-length: %d\r\n" % len(body),
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            body,
        )
    )


def stream_head(keep_alive: bool) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n"
        + (b"" if keep_alive else b"connection: close\r\n")
        + b"\r\n"
    )


def as_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def error_body(message: str, kind: str) -> bytes:
    return dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; None if incomplete. Trailers are skipped."""
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest(400, "bad chunk size") from exc
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)  # empty trailer section or trailers
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, "body too large")
        pos += size + 2


# --------------------------------------------------------------------------- server


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.streams = 0
        self.errors = 0
        self.connections = 0
        self.by_path: dict[str, int] = {}

    def as_json(self) -> bytes:
        return dumps(self.__dict__)


class Upstream:
    """Shared state: options, counters and a cache of rendered responses."""

    def __init__(self, api_key: str | None, stream_delay: float) -> None:
        self.api_key = api_key
        self.stream_delay = stream_delay
        self.stats = Stats()
        self._cache: dict[tuple[str, str, bool, bool], bytes | list[bytes]] = {}

    def rendered(
        self, path: str, model: str, stream: bool, include_usage: bool
    ) -> bytes | list[bytes]:
        key = (path, model, stream, include_usage)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 256:
                self._cache.clear()
            if stream:
                hit = [as_chunk(e) for e in _stream_events(path, model, include_usage)]
            else:
                hit = _whole(path, model)
            self._cache[key] = hit
        return hit


def _whole(path: str, model: str) -> bytes:
    if path == "/v1/messages":
        return anthropic_message(model)
    if path == "/v1/responses":
        return responses_object(model)
    return openai_completion(model)


def _stream_events(path: str, model: str, include_usage: bool) -> list[bytes]:
    if path == "/v1/messages":
        return anthropic_stream_events(model)
    if path == "/v1/responses":
        return responses_stream_events(model)
    return openai_stream_events(model, include_usage)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.up = upstream
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed stream is being written; hold later pipelined requests
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's class is not a subclass
        self.up.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closing = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    # One loop iteration per complete request in the buffer (pipelining).
    def process(self) -> None:
        while not self.busy and not self.closing and self.transport is not None:
            try:
                if not self.handle_one():
                    if len(self.buf) > MAX_HEADER_BYTES + MAX_BODY_BYTES:
                        raise BadRequest(413, "request too large")
                    return
            except BadRequest as exc:
                self.up.stats.errors += 1
                body = error_body(str(exc), "invalid_request_error")
                self.transport.write(full_response(exc.status, body, b"application/json", False))
                self.close()
                return

    def handle_one(self) -> bool:
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise BadRequest(400, "header section too large")
            return False
        lines = bytes(buf[:head_end]).split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ")
        except ValueError as exc:
            raise BadRequest(400, "bad request line") from exc
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise BadRequest(400, "bad header line")
            key = name.lower()
            value = value.strip()
            headers[key] = headers[key] + b", " + value if key in headers else value

        pos = head_end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            decoded = decode_chunked(buf, pos)
            if decoded is None:
                self.maybe_continue(headers)
                return False
            body, end = decoded
        else:
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError as exc:
                raise BadRequest(400, "bad content-length") from exc
            if length < 0 or length > MAX_BODY_BYTES:
                raise BadRequest(413, "bad content-length")
            end = pos + length
            if len(buf) < end:
                self.maybe_continue(headers)
                return False
            body = bytes(buf[pos:end])
        del buf[:end]

        conn = headers.get(b"connection", b"").lower()
        if version == b"HTTP/1.1":
            keep_alive = b"close" not in conn
        elif version == b"HTTP/1.0":
            keep_alive = b"keep-alive" in conn
        else:
            raise BadRequest(400, "unsupported HTTP version")
        self.respond(method, target.split(b"?", 1)[0].decode("latin-1"), headers, body, keep_alive)
        return True

    def maybe_continue(self, headers: dict[bytes, bytes]) -> None:
        if headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            headers.pop(b"expect")
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        if self.up.api_key is None:
            return True
        key = self.up.api_key.encode()
        return headers.get(b"authorization") == b"Bearer " + key or headers.get(b"x-api-key") == key

    def respond(
        self, method: bytes, path: str, headers: dict[bytes, bytes], body: bytes, keep_alive: bool
    ) -> None:
        assert self.transport is not None
        stats = self.up.stats
        stats.requests += 1
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        write = self.transport.write

        if path in MODEL_ROUTES:
            if method != b"POST":
                self.send_error(405, "method not allowed", keep_alive)
                return
            if not self.authorized(headers):
                self.send_error(401, "invalid upstream api key", keep_alive)
                return
            try:
                req = loads(body)
                if not isinstance(req, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError:
                self.send_error(400, "body is not valid JSON", keep_alive)
                return
            model = req.get("model")
            model = model if isinstance(model, str) else "gpt-4o-mini-2024-07-18"
            stream = req.get("stream") is True
            opts = req.get("stream_options")
            include_usage = stream and isinstance(opts, dict) and opts.get("include_usage") is True
            rendered = self.up.rendered(path, model, stream, include_usage)
            if isinstance(rendered, bytes):
                write(full_response(200, rendered, b"application/json", keep_alive))
            else:
                stats.streams += 1
                write(stream_head(keep_alive))
                if self.up.stream_delay > 0:
                    self.busy = True
                    asyncio.get_running_loop().create_task(self.slow_stream(rendered, keep_alive))
                    return
                for chunk in rendered:  # one write (and one HTTP chunk) per SSE event
                    write(chunk)
                write(LAST_CHUNK)
        elif path == "/health" and method in (b"GET", b"HEAD"):
            write(full_response(200, b"ok", b"text/plain", keep_alive))
        elif path == "/__stats" and method == b"GET":
            write(full_response(200, stats.as_json(), b"application/json", keep_alive))
        else:
            self.send_error(404, f"no route for {path}", keep_alive)
            return
        if not keep_alive:
            self.close()

    def send_error(self, status: int, message: str, keep_alive: bool) -> None:
        assert self.transport is not None
        self.up.stats.errors += 1
        body = error_body(message, "invalid_request_error")
        self.transport.write(full_response(status, body, b"application/json", keep_alive))
        if not keep_alive:
            self.close()

    async def slow_stream(self, chunks: list[bytes], keep_alive: bool) -> None:
        for chunk in chunks:
            await asyncio.sleep(self.up.stream_delay)
            if self.transport is None:
                return
            self.transport.write(chunk)
        if self.transport is None:
            return
        self.transport.write(LAST_CHUNK)
        self.busy = False
        if keep_alive:
            self.process()
        else:
            self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, upstream: Upstream) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(upstream), host, port, backlog=2048, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--api-key", help="require this key (Bearer or x-api-key); default: any")
    parser.add_argument(
        "--stream-delay-ms", type=float, default=0.0, help="sleep before each SSE event"
    )
    args = parser.parse_args()
    upstream = Upstream(args.api_key, args.stream_delay_ms / 1000.0)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a project dependency on Linux
        asyncio.run(serve(args.host, args.port, upstream))
    else:
        uvloop.run(serve(args.host, args.port, upstream))


if __name__ == "__main__":
    main()
