"""An Anthropic message -> an OpenAI ``chat.completion`` (rules in ``openai_to_anthropic``).

Also the pieces the stream translator shares: finish reasons and usage.
"""

from __future__ import annotations

from typing import Any

from tollway.metering.usage import Usage, from_anthropic
from tollway.translate.base import Body
from tollway.translate.openai_chat import (
    assistant_message,
    chat_id,
    chat_usage,
    choice,
    completion,
    json_arguments,
    tool_call,
)

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


REASONING_SEPARATOR = "\n\n"
"""Between the texts of two thinking blocks in ``reasoning_content``."""


def finish_reason(stop_reason: Any) -> str:
    """The chat ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def anthropic_usage(usage: Any) -> Body:
    """Chat usage from Anthropic usage: prompt tokens include cache reads and writes."""
    return chat_usage(from_anthropic(usage) or Usage())


def _tool_call(block: Body) -> Body:
    """A chat tool call from a ``tool_use`` block."""
    return tool_call(block.get("id"), block.get("name"), json_arguments(block.get("input")))


def thinking_block(block: Body) -> Body | None:
    """A thinking or redacted thinking block as ``thinking_blocks`` carries it, else None."""
    kind = block.get("type")
    if kind == "thinking":
        return {
            "type": kind,
            "thinking": block.get("thinking") or "",
            "signature": block.get("signature") or "",
        }
    if kind == "redacted_thinking":
        return {"type": kind, "data": block.get("data") or ""}
    return None


def chat_completion(message: Body) -> Body:
    """The ``chat.completion`` body for a complete Anthropic message.

    Text blocks are joined; ``tool_use`` blocks become tool calls; thinking texts are
    joined into ``reasoning_content`` and every thinking block goes, signed, into
    ``thinking_blocks``; other block kinds are left out.
    """
    blocks = [block for block in message.get("content") or [] if isinstance(block, dict)]
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    reply = assistant_message(text or None, calls)
    thinking = [kept for block in blocks if (kept := thinking_block(block)) is not None]
    texts = [block["thinking"] for block in thinking if block.get("thinking")]
    if texts:
        reply["reasoning_content"] = REASONING_SEPARATOR.join(texts)
    if thinking:
        reply["thinking_blocks"] = thinking
    return completion(
        chat_id(message.get("id")),
        message.get("model"),
        [choice(0, reply, finish_reason(message.get("stop_reason")))],
        anthropic_usage(message.get("usage")),
    )
