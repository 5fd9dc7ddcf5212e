"""The floor: the least a proxy on Tollway's own stack costs per request.

A bare ASGI app on uvicorn (httptools, uvloop, the same server options as ``tollway
serve``) that forwards each request, body and headers as they are, through one pooled
aiohttp session (configured as Tollway's upstream transport is), and sends the answer
back: whole when the upstream gave a length, chunk by chunk as it arrives otherwise (a
stream). No parsing, no auth, no metering, no logging. `make bench` reports every
Tollway path as a multiple of this.

Run: python bench/floor.py --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Request headers that describe this hop, not the request: aiohttp writes its own.
_HOP = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding"})


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


class FloorProxy:
    """Forward every request to ``upstream`` (same method, path, query, headers, body)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.forward(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # As Tollway's transport: no pool limit, 30 s keep-alive, no cookies.
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
                self.session = aiohttp.ClientSession(
                    connector=connector, cookie_jar=aiohttp.DummyCookieJar()
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.session is not None
        body = await read_body(receive)
        url = self.upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name not in _HOP
        ]
        async with self.session.request(
            scope["method"], url, data=body, headers=headers, allow_redirects=False
        ) as response:
            out = [(b"content-type", response.headers.get("content-type", "").encode())]
            if response.content_length is not None:
                payload = await response.read()
                out.append((b"content-length", b"%d" % len(payload)))
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": out}
                )
                await send({"type": "http.response.body", "body": payload})
                return
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9001")
    args = parser.parse_args()
    uvicorn.run(
        FloorProxy(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
