"""The text slots of request and response bodies: each string a text guard should read.

A ``TextSlot`` points at one string inside the parsed JSON body (the dict or list that
holds it and the key) so a guard's redaction can replace it in place. Slots cover what
people and models write: message contents (strings or text parts), system prompts,
Responses ``instructions`` and input items, completion prompts, embedding inputs and
the text of tool results. Not tool schemas, tool-call arguments (JSON the model
wrote), images, files' bytes, or Anthropic thinking blocks (their signature covers the
text, so changing it would break the next turn).

Shapes follow the providers' references:
https://platform.openai.com/docs/api-reference/chat/create,
https://platform.openai.com/docs/api-reference/responses/create,
https://docs.anthropic.com/en/api/messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.dialects.endpoints import Endpoint

# Content part types whose "text" is text (OpenAI chat, Responses, Anthropic).
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})


@dataclass(slots=True)
class TextSlot:
    """One string in a parsed body: ``get`` reads it, ``set`` replaces it in place."""

    container: Any  # the dict or list that holds the string
    key: str | int
    role: str  # who wrote it: system, developer, user, assistant, tool
    path: str  # where it is, e.g. "messages[2].content[0].text"

    def get(self) -> str:
        """The string."""
        value: str = self.container[self.key]
        return value

    def set(self, text: str) -> None:
        """Replace the string."""
        self.container[self.key] = text


def request_texts(endpoint: str, payload: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a request body of ``endpoint`` (none for other endpoints)."""
    slots: list[TextSlot] = []
    if endpoint == Endpoint.CHAT_COMPLETIONS:
        _messages(payload, slots)
    elif endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        _content(payload, "system", "system", "system", slots)
        _messages(payload, slots)
    elif endpoint == Endpoint.RESPONSES:
        _responses_request(payload, slots)
    elif endpoint == Endpoint.COMPLETIONS:
        _strings(payload, "prompt", "user", slots)
        _strings(payload, "suffix", "user", slots)
    elif endpoint == Endpoint.EMBEDDINGS:
        _strings(payload, "input", "user", slots)
    return slots


def response_texts(endpoint: str, body: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a complete (not streamed) JSON answer of ``endpoint``."""
    slots: list[TextSlot] = []
    if endpoint == Endpoint.CHAT_COMPLETIONS:
        for i, choice in _items(body.get("choices")):
            message = choice.get("message")
            if isinstance(message, dict):
                _content(message, "content", "assistant", f"choices[{i}].message.content", slots)
    elif endpoint == Endpoint.COMPLETIONS:
        for i, choice in _items(body.get("choices")):
            _string(choice, "text", "assistant", f"choices[{i}].text", slots)
    elif endpoint == Endpoint.RESPONSES:
        for i, item in _items(body.get("output")):
            if item.get("type") == "message":
                _content(item, "content", "assistant", f"output[{i}].content", slots)
    elif endpoint == Endpoint.MESSAGES:
        _content(body, "content", "assistant", "content", slots)
    return slots


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The dict items of a list (anything else in it is skipped)."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _string(
    container: dict[str, Any], key: str, role: str, path: str, slots: list[TextSlot]
) -> None:
    if isinstance(container.get(key), str):
        slots.append(TextSlot(container, key, role, path))


def _strings(payload: dict[str, Any], key: str, role: str, slots: list[TextSlot]) -> None:
    """A string or a list of strings (lists of token ids are not text)."""
    value = payload.get(key)
    if isinstance(value, str):
        slots.append(TextSlot(payload, key, role, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                slots.append(TextSlot(value, i, role, f"{key}[{i}]"))


def _messages(payload: dict[str, Any], slots: list[TextSlot]) -> None:
    for i, message in _items(payload.get("messages")):
        role = message.get("role")
        _content(
            message,
            "content",
            role if isinstance(role, str) else "user",
            f"messages[{i}].content",
            slots,
        )


def _content(
    container: dict[str, Any], key: str, role: str, path: str, slots: list[TextSlot]
) -> None:
    """A content field: a string, or a list of parts of which some hold text."""
    value = container.get(key)
    if isinstance(value, str):
        slots.append(TextSlot(container, key, role, path))
        return
    for j, part in _items(value):
        kind = part.get("type")
        where = f"{path}[{j}]"
        if kind in _TEXT_PARTS:
            _string(part, "text", role, f"{where}.text", slots)
        elif kind in ("tool_result", "search_result"):  # Anthropic: a string or text blocks
            _content(part, "content", "tool", f"{where}.content", slots)
        elif kind == "document":  # Anthropic plain-text documents carry their text inline
            source = part.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                _string(source, "data", role, f"{where}.source.data", slots)


def _responses_request(payload: dict[str, Any], slots: list[TextSlot]) -> None:
    _string(payload, "instructions", "system", "instructions", slots)
    value = payload.get("input")
    if isinstance(value, str):
        slots.append(TextSlot(payload, "input", "user", "input"))
    for i, item in _items(value):
        kind, where = item.get("type"), f"input[{i}]"
        if kind in (None, "message") and "role" in item:
            role = item.get("role")
            _content(
                item,
                "content",
                role if isinstance(role, str) else "user",
                f"{where}.content",
                slots,
            )
        elif kind in _TOOL_OUTPUTS:
            _content(item, "output", "tool", f"{where}.output", slots)
    # A stored prompt's variables are substituted into it as text.
    prompt = payload.get("prompt")
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    if isinstance(variables, dict):
        for name, variable in variables.items():
            if isinstance(variable, str):
                slots.append(TextSlot(variables, name, "user", f"prompt.variables.{name}"))
            elif isinstance(variable, dict) and variable.get("type") == "input_text":
                _string(variable, "text", "user", f"prompt.variables.{name}.text", slots)
