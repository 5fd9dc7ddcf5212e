"""A ``chat.completion`` -> an OpenAI Responses ``response`` object.

https://platform.openai.com/docs/api-reference/responses/object

- output items, in order: a ``reasoning`` item when the upstream returned reasoning text
  (``reasoning_content``, which several OpenAI-compatible servers and the gateway's
  Anthropic translation use), its text as a summary; a ``message`` with one
  ``output_text`` part (or a ``refusal`` part); then each tool call as a
  ``function_call`` (``call_id`` = the chat tool call id), or a ``custom_tool_call`` with
  the ``input`` argument when the client declared that tool as custom. A tool of a
  ``namespace`` (flattened to ``<namespace>__<name>`` in chat) is called by its own name
  with its ``namespace``.
- ``finish_reason``: ``length`` -> status ``incomplete`` with reason
  ``max_output_tokens``; ``content_filter`` -> ``incomplete`` with reason
  ``content_filter``; anything else -> ``completed``.
- usage: ``input_tokens`` = prompt tokens (cached ones included, as OpenAI counts them),
  ``cached_tokens``, ``output_tokens``, ``reasoning_tokens``.
- The request's settings are echoed (``instructions``, ``tools``, ``tool_choice``,
  ``temperature``, ...), ``store`` is false (nothing is kept), ids are fresh
  ``resp_`` / ``msg_`` / ``fc_`` ids.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.translate.base import Body


@dataclass
class ToolNames:
    """The client's tools as chat knows them: a tool of a ``namespace`` is flattened to
    ``<namespace>__<name>`` (chat has no namespaces), custom tools are functions taking
    one ``input`` string."""

    entries: dict[str, tuple[str | None, str, bool]] = field(default_factory=dict)

    @staticmethod
    def chat_name(namespace: str | None, name: str) -> str:
        """The chat function name of a (namespaced) tool."""
        return f"{namespace}__{name}" if namespace else name

    def add(self, namespace: str | None, name: str, custom: bool) -> str:
        """Note a client tool; its chat function name."""
        chat = self.chat_name(namespace, name)
        self.entries[chat] = (namespace, name, custom)
        return chat

    def resolve(self, chat: str) -> tuple[str | None, str, bool]:
        """(namespace, name, custom) of a chat function name (unknown names as they are)."""
        return self.entries.get(chat, (None, chat, False))


def new_id(prefix: str) -> str:
    """A fresh id of the kind OpenAI uses (``resp_``, ``msg_``, ``fc_``, ``rs_``)."""
    return f"{prefix}_{secrets.token_hex(16)}"


def base_response(request: Body, response_id: str, model: Any, status: str) -> Body:
    """A ``response`` object with the request's settings and no output yet."""
    text = obj(request.get("text")) or None
    reasoning = obj(request.get("reasoning"))
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model or request.get("model"),
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {
            "effort": reasoning.get("effort"),
            "summary": reasoning.get("summary"),
        },
        "store": False,
        "temperature": request.get("temperature", 1.0),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def finish(response: Body, finish_reason: Any) -> None:
    """Set the status a chat ``finish_reason`` means."""
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"


def usage_object(usage: Any) -> Body | None:
    """Responses usage from a chat ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    cached = _count(obj(usage.get("prompt_tokens_details")).get("cached_tokens"))
    reasoning = _count(obj(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def obj(value: Any) -> Body:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def message_item(item_id: str, text: str, refusal: bool = False, status: str = "completed") -> Body:
    """An assistant ``message`` output item with one text (or refusal) part."""
    part: Body = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    if refusal:
        part = {"type": "refusal", "refusal": text}
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [part],
    }


def reasoning_item(item_id: str, text: str) -> Body:
    """A ``reasoning`` output item whose summary is the upstream's reasoning text."""
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }


def call_item(
    item_id: str,
    call_id: str,
    chat_name: str,
    arguments: str,
    names: ToolNames,
    status: str = "completed",
) -> Body:
    """A ``function_call`` item, or a ``custom_tool_call`` for a custom tool, named as
    the client declared it."""
    namespace, name, custom = names.resolve(chat_name)
    item: Body = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name}
    if custom:
        item["type"] = "custom_tool_call"
        item["input"] = custom_input(arguments)
    else:
        item["arguments"] = arguments
    if namespace:
        item["namespace"] = namespace
    item["status"] = status
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's free-form input, from the ``{"input": ...}`` arguments of the
    function it was translated to (the raw arguments when the model sent other JSON)."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return arguments


def response_object(chat: Body, request: Body, names: ToolNames) -> Body:
    """The Responses object for a complete chat completion."""
    response = base_response(request, new_id("resp"), chat.get("model"), "completed")
    choices = chat.get("choices") or []
    first = obj(choices[0]) if choices else {}
    message = obj(first.get("message"))
    output: list[Body] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(new_id("rs"), reasoning))
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(refusal, str) and refusal:
        output.append(message_item(new_id("msg"), refusal, refusal=True))
    elif isinstance(text, str) and text:
        output.append(message_item(new_id("msg"), text))
    for call in message.get("tool_calls") or []:
        function = obj(obj(call).get("function"))
        if not function:
            continue
        name = str(function.get("name") or "")
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        call_id = str(obj(call).get("id") or new_id("call"))
        output.append(call_item(new_id("fc"), call_id, name, arguments, names))
    response["output"] = output
    finish(response, first.get("finish_reason"))
    response["usage"] = usage_object(chat.get("usage"))
    return response
