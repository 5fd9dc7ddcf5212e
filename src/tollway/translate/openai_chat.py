"""OpenAI chat shapes shared by the translators whose client speaks chat.completions.

Reading the client's request: objects checked at a named path, base64 ``data:`` URLs,
function tools, turns merged by role. Building the answer: the ``chat.completion``
body, its choices, tool calls and ``usage``, and ``ChatChunkStream``, the base of every
stream translator that emits ``chat.completion.chunk`` events.

https://platform.openai.com/docs/api-reference/chat/create
https://platform.openai.com/docs/api-reference/chat/object
https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from tollway.errors import BadRequest
from tollway.metering.usage import Usage
from tollway.translate.base import Body, StreamTranslator, sse

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(.*)$", re.DOTALL)

# ------------------------------------------------------------------------------- request


def as_object(value: Any, where: str) -> Body:
    """``value`` when it is a JSON object, else a 400 naming ``where``."""
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must be an object.", param=where)
    return value


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def reject_legacy_functions(body: Body) -> None:
    """400 for the deprecated ``functions`` / ``function_call`` parameters."""
    for legacy in ("functions", "function_call"):
        if legacy in body:
            raise BadRequest(f"Use 'tools' and 'tool_choice' instead of '{legacy}'.")


def wants_usage(body: Body) -> bool:
    """Whether a streaming client asked for the usage chunk (``stream_options``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def data_url(url: Any, where: str, upstream: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:`` URL; anything else is a 400, since
    ``upstream`` takes files inline only."""
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise BadRequest(
            f"{where}: {upstream} takes files inline only; send a base64 data: URL.", param=where
        )
    return match.group(1), match.group(2)


def content_text(content: Any) -> str:
    """The text of a string or of a list of text parts, joined."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def function_tool(item: Any, index: int, upstream: str) -> Body:
    """The ``function`` of ``tools[index]``; a tool of another type is a 400."""
    tool = as_object(item, f"tools[{index}]")
    if tool.get("type") != "function":
        raise BadRequest(
            f"tools[{index}]: only function tools can be sent to {upstream}.", param="tools"
        )
    return as_object(tool.get("function"), f"tools[{index}].function")


def chosen_function(choice: Body) -> str:
    """The function name of a ``tool_choice`` object."""
    name = dig(choice, "function", "name")
    if not isinstance(name, str):
        raise BadRequest("tool_choice.function.name is required.", param="tool_choice")
    return name


def append_turn(turns: list[Body], role: str, field: str, items: list[Body]) -> None:
    """Add ``items`` as a turn, merged into the previous one when the role repeats.

    Anthropic, Gemini and Converse want user and assistant turns to alternate; OpenAI
    allows runs of the same role (and sends each tool result as its own message).
    """
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][field].extend(items)
    else:
        turns.append({"role": role, field: list(items)})


# ------------------------------------------------------------------------------ response


def chat_id(upstream_id: Any = None) -> str:
    """A completion id: the upstream's id, kept whole, behind ``chatcmpl-`` (a fresh
    one when the upstream sent none)."""
    if not isinstance(upstream_id, str) or not upstream_id:
        upstream_id = uuid.uuid4().hex
    return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"


def chat_usage(usage: Usage, *, reasoning: bool = False) -> Body:
    """An OpenAI ``usage`` object; ``reasoning`` adds the reasoning-token count, for
    upstreams that report one."""
    out: Body = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def json_arguments(arguments: Any) -> str:
    """Tool call arguments as the JSON string OpenAI sends (``{}`` when there are none)."""
    return orjson.dumps(arguments or {}).decode()


def tool_call(call_id: Any, name: Any, arguments: str) -> Body:
    """A function tool call."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def assistant_message(content: str | None, calls: list[Body]) -> Body:
    """The assistant message of a choice, with its tool calls when it made any."""
    message: Body = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return message


def choice(index: int, message: Body, finish_reason: str) -> Body:
    """One choice of a ``chat.completion``."""
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def completion(
    completion_id: str, model: Any, choices: list[Body], usage: Body | None = None
) -> Body:
    """A ``chat.completion`` body, created now."""
    out: Body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out


class ChatChunkStream(StreamTranslator):
    """A stream translator whose client gets ``chat.completion.chunk`` events.

    Every chunk carries the stream's id, creation time and model. When the client asked
    for usage, every chunk has ``"usage": null`` and a last chunk with empty ``choices``
    holds the counts, as OpenAI sends them.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = chat_id()
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage

    def _chunk(self, delta: Body, finish_reason: str | None = None, index: int = 0) -> bytes:
        """A chunk with one choice's delta."""
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope([choice])

    def _envelope(self, choices: list[Body], usage: Body | None = None) -> bytes:
        chunk: Body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage  # null until the last chunk
        return sse(chunk)

    def _end(self, usage: Body) -> list[bytes]:
        """The usage chunk (when the client asked for it), then ``data: [DONE]``."""
        events = [self._envelope([], usage)] if self.include_usage else []
        events.append(sse("[DONE]"))
        return events
