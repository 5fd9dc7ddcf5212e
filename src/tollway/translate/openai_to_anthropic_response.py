"""An Anthropic message -> an OpenAI ``chat.completion`` (rules in ``openai_to_anthropic``).

Also the pieces the stream translator shares: finish reasons, usage and ids.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from tollway.metering.usage import Usage, from_anthropic
from tollway.translate.base import Body

# https://docs.anthropic.com/en/api/messages#response-stop-reason
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # Only server tools pause a turn, and this pairing sends none.
    "pause_turn": "stop",
}


def finish_reason(stop_reason: Any) -> str:
    """The chat ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def chat_id(message_id: Any) -> str:
    """The completion id: Anthropic's message id, kept whole, behind ``chatcmpl-``."""
    if not isinstance(message_id, str) or not message_id:
        message_id = uuid.uuid4().hex
    return message_id if message_id.startswith("chatcmpl-") else f"chatcmpl-{message_id}"


def chat_usage(usage: Any) -> Body:
    """Chat usage from Anthropic usage: prompt tokens include cache reads and writes."""
    counts = from_anthropic(usage) or Usage()
    return {
        "prompt_tokens": counts.input_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.total_tokens,
        "prompt_tokens_details": {"cached_tokens": counts.cache_read_tokens},
    }


def tool_call(block: Body) -> Body:
    """A chat tool call from a ``tool_use`` block (arguments as a JSON string)."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def chat_completion(message: Body) -> Body:
    """The ``chat.completion`` body for a complete Anthropic message.

    Text blocks are joined; ``tool_use`` blocks become tool calls; thinking and any
    other block kinds are left out.
    """
    blocks = [block for block in message.get("content") or [] if isinstance(block, dict)]
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    calls = [tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    reply: Body = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason")),
    }
    return {
        "id": chat_id(message.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [choice],
        "usage": chat_usage(message.get("usage")),
    }
