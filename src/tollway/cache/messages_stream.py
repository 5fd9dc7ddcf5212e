"""Anthropic Messages answers: whole ``message`` <-> event stream.

A message becomes the events Anthropic streams for it
(https://docs.anthropic.com/en/docs/build-with-claude/streaming): ``message_start``
(the message with no content, no stop reason, its usage), per content block
``content_block_start`` (an empty block), its deltas (``text_delta`` and
``citations_delta``; ``thinking_delta`` and ``signature_delta``; ``input_json_delta``
for tool inputs; other blocks come whole in their start) and ``content_block_stop``;
then ``message_delta`` (stop reason, final usage) and ``message_stop``.

Events become a message the way the SDKs accumulate them; a stream with an ``error``
event, without ``message_stop``, or with tool input that is not JSON is no answer (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tollway.translate.base import Body, event_json, sse

# Blocks whose ``input`` streams as JSON text (input_json_delta).
_JSON_INPUT = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# Usage fields a message_delta carries (cumulative totals).
_DELTA_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                "output_tokens", "server_tool_use", "output_tokens_details")  # fmt: skip
# message_delta.delta fields beyond the stop reason and sequence.
_DELTA_EXTRA = ("stop_details", "container")
# Deltas that add a piece to a block field: the field, and the delta's key for the piece.
_PIECES = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "input"}
_PIECE_KEYS = {"text": "text", "thinking": "thinking", "input": "partial_json"}


def message_events(body: Body) -> list[bytes]:
    """The event stream of a ``message`` body."""
    start = {**body, "content": [], "stop_reason": None, "stop_sequence": None}
    if "stop_details" in body:
        start["stop_details"] = None
    events = [_event("message_start", message=start)]
    for index, block in enumerate(body.get("content") or []):
        events.extend(_block(index, block))
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    delta.update((name, body[name]) for name in _DELTA_EXTRA if name in body)
    usage = body.get("usage") or {}
    final = {name: usage[name] for name in _DELTA_USAGE if name in usage}
    final.setdefault("output_tokens", 0)
    events.append(_event("message_delta", delta=delta, usage=final))
    events.append(_event("message_stop"))
    return events


def message_body(events: Sequence[bytes]) -> Body | None:
    """The message a complete event stream adds up to, or None."""
    message: Body | None = None
    blocks: dict[int, Body] = {}
    # Pieces of text, thinking and tool input per (block, field), joined at the end.
    pieces: dict[tuple[int, str], list[str]] = {}
    stopped = False
    for event in events:
        data = event_json(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind is None or kind == "ping":
            continue
        if kind == "error" or stopped:
            return None
        if kind == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
        elif message is None:
            return None  # nothing counts before message_start
        elif kind == "content_block_start":
            index, block = data.get("index"), data.get("content_block")
            if not isinstance(index, int) or not isinstance(block, dict):
                return None
            blocks[index] = block
        elif kind == "content_block_delta":
            index = data.get("index")
            block = blocks.get(index) if isinstance(index, int) else None
            if block is None or not _apply(block, data.get("delta"), pieces, index):
                return None
        elif kind == "message_delta":
            _finish(message, data)
        elif kind == "message_stop":
            stopped = True
    if message is None or not stopped:
        return None
    for (index, field), parts in pieces.items():
        block = blocks[index]
        if field != "input":
            block[field] = str(block.get(field) or "") + "".join(parts)
            continue
        try:
            block["input"] = orjson.loads("".join(parts))
        except orjson.JSONDecodeError:
            return None
    message["content"] = [blocks[index] for index in sorted(blocks)]
    return message


# ---------------------------------------------------------------------------- building


def _event(kind: str, **fields: Any) -> bytes:
    return sse({"type": kind, **fields}, event=kind)


def _delta(index: int, delta: Body) -> bytes:
    return _event("content_block_delta", index=index, delta=delta)


def _block(index: int, block: Body) -> list[bytes]:
    kind = block.get("type")
    start = dict(block)
    deltas: list[bytes] = []
    if kind == "text":
        start["text"] = ""
        if block.get("text"):
            deltas.append(_delta(index, {"type": "text_delta", "text": block["text"]}))
        citations = block.get("citations")
        if citations:  # they arrive one by one, onto a block that has none yet
            start.pop("citations")
            for citation in citations:
                deltas.append(_delta(index, {"type": "citations_delta", "citation": citation}))
    elif kind == "thinking":
        start["thinking"], start["signature"] = "", ""
        if block.get("thinking"):
            deltas.append(_delta(index, {"type": "thinking_delta", "thinking": block["thinking"]}))
        if block.get("signature"):
            deltas.append(
                _delta(index, {"type": "signature_delta", "signature": block["signature"]})
            )
    elif kind in _JSON_INPUT and "input" in block:
        start["input"] = {}
        partial = orjson.dumps(block["input"]).decode()
        deltas.append(_delta(index, {"type": "input_json_delta", "partial_json": partial}))
    return [
        _event("content_block_start", index=index, content_block=start),
        *deltas,
        _event("content_block_stop", index=index),
    ]


# ------------------------------------------------------------------------ accumulating


def _apply(block: Body, delta: Any, pieces: dict[tuple[int, str], list[str]], index: int) -> bool:
    """Fold one content_block_delta into its block; False when it cannot apply."""
    if not isinstance(delta, dict):
        return False
    kind = delta.get("type")
    field = _PIECES.get(kind) if isinstance(kind, str) else None
    if field is not None:
        piece = delta.get(_PIECE_KEYS[field], "")
        if piece:
            pieces.setdefault((index, field), []).append(str(piece))
    elif kind == "citations_delta":
        block["citations"] = [*(block.get("citations") or []), delta.get("citation")]
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    else:
        return False  # a delta this module does not know: its answer is not rebuilt
    return True


def _finish(message: Body, data: Body) -> None:
    """Fold message_delta: stop fields, then the cumulative usage counts it carries."""
    delta = data.get("delta")
    if isinstance(delta, dict):
        message["stop_reason"] = delta.get("stop_reason")
        message["stop_sequence"] = delta.get("stop_sequence")
        for name in _DELTA_EXTRA:
            if delta.get(name) is not None:
                message[name] = delta[name]
    usage = data.get("usage")
    if isinstance(usage, dict):
        merged = dict(message.get("usage") or {})
        merged.update((name, value) for name, value in usage.items() if value is not None)
        message["usage"] = merged
