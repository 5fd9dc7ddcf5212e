"""The Responses API over a WebSocket (``GET /v1/responses`` with an upgrade), as Codex
opens it first: without it Codex retries the upgrade for several seconds before it falls
back to HTTP.

The protocol: after the upgrade, the client sends ``{"type": "response.create", ...}``
(a Responses request body) and reads the response's stream events, one JSON text message
each, up to ``response.completed``; then it may send the next request on the same
connection. A failure is one ``{"type": "error", "status": ..., "error": {...}}``
message. ``response.processed`` acknowledgements are ignored.

Each request runs through the proxy pipeline exactly as an HTTP ``POST /v1/responses``
with ``stream: true`` (same authentication, limits, budgets, routing, translation and
metering): this module only adapts the transport. Two features need the connection's
memory:

- ``previous_response_id`` naming the connection's last response: the request's
  ``input`` is then only what is new, and the full input is that response's input, its
  output items, then the new items. (The upstream is sent the full conversation, so
  this works for every provider.) Any other id -> an error message
  ``previous_response_not_found``: the client starts over with the full input.
- ``generate: false`` (a warm-up): nothing is generated or billed; the answer is an
  empty completed response whose id later requests may continue from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.asgi import Message, Receive, Scope, Send
from tollway.auth.directory import KeyDirectory
from tollway.dialects.endpoints import Endpoint
from tollway.errors import ServiceUnavailable, TollwayError
from tollway.sse import EventSplitter
from tollway.switches import SwitchBoard
from tollway.translate.base import event_json
from tollway.translate.responses_to_openai_response import base_response, new_id

log = logging.getLogger("tollway.responses_socket")
PATH = "/v1/responses"
_CLOSE_POLICY = 1008  # the WebSocket close code for "policy violation"
# Runs one proxy call (the pipeline of the config in force: live.Live.handle).
Handle = Callable[[Endpoint, Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Memory:
    """The connection's last response: the full input it answered and its output."""

    response_id: str | None = None
    items: list[Any] = field(default_factory=list)


class ResponsesSocket:
    """Serves Responses requests arriving over one WebSocket connection each."""

    def __init__(
        self, handle: Handle, directory: KeyDirectory, switches: SwitchBoard, max_body: int
    ) -> None:
        self._handle = handle
        self._directory = directory
        self._switches = switches
        self._max_body = max_body

    async def _switched_off(self) -> ServiceUnavailable | None:
        """The error to answer while the proxy is switched off (state re-read first)."""
        epochs = await self._directory.epochs()
        await self._switches.refresh_if_changed(epochs.switches)
        if self._switches.proxy_on():
            return None
        return ServiceUnavailable(
            "The gateway is switched off by an operator; try again later.",
            code="switched_off",
            retry_after=30,
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One connection: accept (with a valid key), then one request at a time."""
        if (await receive())["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            await self._directory.authenticate(headers)
            off = await self._switched_off()
            if off is not None:
                raise off
        except TollwayError as error:
            await _deny(scope, send, error)
            return
        await send({"type": "websocket.accept"})
        memory = _Memory()
        pending: list[Message] = []
        while True:
            message = pending.pop(0) if pending else await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = bytes(message["bytes"]).decode("utf-8", "replace")
            if not text or len(text) > self._max_body:
                status = 413 if text else 400
                reason = "A request message must be a JSON object within the size limit."
                await _send_error(send, status, "invalid_request", reason)
                continue
            if not await self._request(scope, text, memory, receive, send, pending):
                return

    async def _request(
        self,
        scope: Scope,
        text: str,
        memory: _Memory,
        receive: Receive,
        send: Send,
        pending: list[Message],
    ) -> bool:
        """Serve one message; False when the client went away meanwhile."""
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            await _send_error(send, 400, "invalid_request", "The message is not valid JSON.")
            return True
        if not isinstance(body, dict):
            await _send_error(send, 400, "invalid_request", "The message must be a JSON object.")
            return True
        kind = body.pop("type", None)
        if kind == "response.processed":
            return True
        if kind != "response.create":
            await _send_error(
                send, 400, "invalid_request", f"Unknown message type {str(kind)[:40]!r}."
            )
            return True
        items = _full_input(body, memory)
        if items is None:
            await _send_error(
                send,
                400,
                "previous_response_not_found",
                "previous_response_id is not this connection's last response; send the "
                "whole conversation in 'input'.",
            )
            return True
        body["input"] = items
        if body.pop("generate", True) is False:
            off = await self._switched_off()
            if off is not None:
                await _send_error(send, off.status, off.code, off.message)
            else:
                await self._warm_up(body, memory, send)
            return True
        return await self._run(scope, body, memory, receive, send, pending)

    async def _warm_up(self, body: dict[str, Any], memory: _Memory, send: Send) -> None:
        response = base_response(body, new_id("resp"), body.get("model"), "in_progress")
        await _send_json(send, {"type": "response.created", "sequence_number": 0,
                                "response": response})  # fmt: skip
        response = {**response, "status": "completed", "usage": _no_usage()}
        await _send_json(send, {"type": "response.completed", "sequence_number": 1,
                                "response": response})  # fmt: skip
        memory.response_id, memory.items = response["id"], list(body["input"])

    async def _run(
        self,
        scope: Scope,
        body: dict[str, Any],
        memory: _Memory,
        receive: Receive,
        send: Send,
        pending: list[Message],
    ) -> bool:
        body["stream"] = True
        raw = orjson.dumps(body)
        http_scope: Scope = {
            **scope,
            "type": "http",
            "method": "POST",
            "path": PATH,
            "headers": [
                *(h for h in scope["headers"] if h[0] not in (b"content-length", b"content-type")),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
        relay = _Relay(send)
        gone = False
        delivered = False

        async def http_receive() -> Message:
            nonlocal delivered, gone
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            while True:  # the pipeline watches for the client leaving
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    gone = True
                    return {"type": "http.disconnect"}
                pending.append(message)  # a message sent early: served next

        await self._handle(Endpoint.RESPONSES, http_scope, http_receive, relay.send)
        await relay.close()
        if relay.completed is not None:
            output = relay.completed.get("output")
            memory.response_id = relay.completed.get("id")
            memory.items = [*body["input"], *(output if isinstance(output, list) else [])]
        return not gone


class _Relay:
    """The pipeline's HTTP response, re-sent as WebSocket messages."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._status = 200
        self._error = b""
        self._splitter = EventSplitter()
        self.completed: dict[str, Any] | None = None

    async def send(self, message: Message) -> None:
        """Take one ASGI HTTP response message."""
        kind = message["type"]
        if kind == "http.response.start":
            self._status = int(message["status"])
        elif kind == "http.response.body":
            chunk = bytes(message.get("body", b""))
            if self._status != 200:
                self._error += chunk
                return
            for event in self._splitter.feed(chunk):
                await self._event(event)

    async def _event(self, event: bytes) -> None:
        data = event_json(event)
        if not isinstance(data, dict):
            return
        if "error" in data and "type" not in data:
            error = data["error"] if isinstance(data["error"], dict) else {}
            await _send_error(self._send, 502, str(error.get("code") or "upstream_error"),
                              str(error.get("message") or "The upstream failed."))  # fmt: skip
            return
        if data.get("type") == "response.completed" and isinstance(data.get("response"), dict):
            self.completed = data["response"]
        await _send_json(self._send, data)

    async def close(self) -> None:
        """Send what a non-streamed answer (an error) said."""
        if self._status == 200:
            return
        try:
            parsed = orjson.loads(self._error)
        except orjson.JSONDecodeError:
            parsed = {}
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if not isinstance(error, dict):
            error = {"message": "The request failed.", "code": "error"}
        await _send_json(self._send, {"type": "error", "status": self._status, "error": error})


async def _send_json(send: Send, data: dict[str, Any]) -> None:
    try:
        await send({"type": "websocket.send", "text": orjson.dumps(data).decode()})
    except (OSError, RuntimeError, asyncio.CancelledError):
        log.info("responses socket closed while sending")
        raise


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    error = {"type": "invalid_request_error" if status < 500 else "server_error",
             "code": code, "message": message}  # fmt: skip
    await _send_json(send, {"type": "error", "status": status, "error": error})


async def _deny(scope: Scope, send: Send, error: TollwayError) -> None:
    """Refuse the upgrade with the error's HTTP status and body when the server can send
    one (the ASGI denial-response extension), else close it with a policy violation."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": _CLOSE_POLICY, "reason": error.code})
        return
    body = orjson.dumps({"error": {"message": error.message, "type": "authentication_error",
                                   "code": error.code, "param": None}})  # fmt: skip
    await send(
        {
            "type": "websocket.http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        }
    )  # fmt: skip
    await send({"type": "websocket.http.response.body", "body": body})


def _full_input(body: dict[str, Any], memory: _Memory) -> list[Any] | None:
    """The request's whole input, continuing the connection's last response when it
    names it; None when it names another."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    elif not isinstance(items, list):
        items = []
    previous = body.pop("previous_response_id", None)
    if previous is None:
        return list(items)
    if previous != memory.response_id:
        return None
    return [*memory.items, *items]


def _no_usage() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
