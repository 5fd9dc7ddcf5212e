"""An OpenAI ``chat.completion`` -> an Anthropic message (rules in ``anthropic_to_openai``).

Also the pieces the stream translator shares: stop reasons, usage and ids.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from tollway.errors import UpstreamError
from tollway.metering.usage import Usage, from_openai
from tollway.translate.base import Body

# Where OpenAI-compatible servers (DeepSeek, vLLM, SGLang, ...) put a reasoning model's
# reasoning: https://api-docs.deepseek.com/guides/reasoning_model
REASONING_FIELDS = ("reasoning_content", "reasoning")

# https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any, refused: bool = False) -> str:
    """The Anthropic ``stop_reason`` for a chat ``finish_reason``.

    OpenAI does not say whether ``stop`` came from a stop sequence, so it is always
    ``end_turn``. A refusal (structured outputs) finishes with ``stop`` at OpenAI; it is
    reported as ``refusal``.
    """
    reason = STOP_REASONS.get(finish_reason if isinstance(finish_reason, str) else "stop")
    reason = reason or "end_turn"
    return "refusal" if refused and reason == "end_turn" else reason


def message_id(completion_id: Any) -> str:
    """The message id: the completion id, kept whole, behind ``msg_``."""
    if not isinstance(completion_id, str) or not completion_id:
        completion_id = uuid.uuid4().hex
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def message_usage(usage: Any) -> Body:
    """Anthropic usage from chat usage: input tokens exclude the cached ones.

    OpenAI reports no cache writes, so ``cache_creation_input_tokens`` is 0.
    """
    counts = from_openai(usage) or Usage()
    return {
        "input_tokens": max(counts.input_tokens - counts.cache_read_tokens, 0),
        "output_tokens": counts.output_tokens,
        "cache_read_input_tokens": counts.cache_read_tokens,
        "cache_creation_input_tokens": 0,
    }


def tool_input(arguments: Any) -> Body:
    """A tool call's arguments as the ``input`` object (empty arguments mean ``{}``)."""
    if arguments is None or arguments == "":
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("The upstream model returned tool call arguments that are not JSON.")
    return value


def reasoning_text(message: Body) -> str:
    """The reasoning an OpenAI-compatible server sent beside the answer, or ``""``."""
    for key in REASONING_FIELDS:
        text = message.get(key)
        if isinstance(text, str) and text:
            return text
    return ""


def _content(message: Body, thinking: bool) -> list[Body]:
    blocks: list[Body] = []
    reasoning = reasoning_text(message) if thinking else ""
    if reasoning:
        # Unsigned: it did not come from Anthropic, and it is dropped when sent back.
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # some OpenAI-compatible servers answer with parts
        text = "".join(part.get("text") or "" for part in text if isinstance(part, dict))
    text = text or message.get("refusal")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks


def anthropic_message(completion: Body, thinking: bool = False) -> Body:
    """The Anthropic message for a chat completion's first choice (reasoning kept if asked)."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError("The upstream model returned no choices.")
    choice = choices[0]
    message = choice.get("message") or {}
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": _content(message, thinking),
        "stop_reason": stop_reason(choice.get("finish_reason"), bool(message.get("refusal"))),
        "stop_sequence": None,
        "usage": message_usage(completion.get("usage")),
    }
