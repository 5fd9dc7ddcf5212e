"""Anthropic ``system`` and ``messages`` -> OpenAI chat ``messages``.

The rules are listed in ``anthropic_to_openai``'s docstring; this module holds the
conversion of the conversation itself. Every shape problem becomes a 400 naming the
offending path (``messages[2].content[1].source``).
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import BadRequest
from tollway.translate.base import Body

TOOL_ERROR_PREFIX = "Error: "
"""Put before a tool result's text when the client marked it ``is_error``."""

TOOL_ATTACHMENTS = "Attachments of the result of tool call {call_id}:"
"""Introduces a tool result's images and documents in the user message that follows the
tool messages (OpenAI tool messages carry text only)."""

# Blocks that carry the model's hidden reasoning; an OpenAI model cannot take them back.
_THINKING = frozenset({"thinking", "redacted_thinking"})


def convert_system(system: Any, where: str = "system") -> list[Body]:
    """One system message per system text (a string or text blocks)."""
    return [{"role": "system", "content": text} for text in _texts(system, where)]


def convert_messages(messages: list[Body]) -> list[Body]:
    """OpenAI chat messages for Anthropic user, assistant and system turns."""
    converted: list[Body] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message["role"]
        if role == "user":
            converted.extend(_user_messages(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            converted.extend(_assistant_messages(message.get("content"), f"{where}.content"))
        elif role == "system":
            # A mid-conversation system message keeps its place: chat takes system
            # messages anywhere. Anthropic's rule:
            # https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages
            converted.extend(convert_system(message.get("content"), f"{where}.content"))
        else:
            raise BadRequest(
                f"'{where}.role' must be 'user', 'assistant' or 'system'.", param=f"{where}.role"
            )
    return converted


def _blocks(content: Any, where: str) -> list[Body]:
    """Content as blocks: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise BadRequest(f"'{where}' must be a string or an array of content blocks.", param=where)
    return content


def _texts(content: Any, where: str) -> list[str]:
    """The non-empty texts of a string or of text blocks (anything else -> 400)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    texts = [
        _text(block, f"{where}[{index}]") for index, block in enumerate(_blocks(content, where))
    ]
    return [text for text in texts if text]


def _text(block: Body, where: str) -> str:
    """The text of a text block (anything else -> 400)."""
    text = block.get("text")
    if block.get("type") != "text" or not isinstance(text, str):
        raise BadRequest(f"'{where}' must be a text block here.", param=where)
    return text


def _user_messages(content: Any, where: str) -> list[Body]:
    """Tool messages for the turn's tool results, then a user message for the rest.

    Tool messages go first because OpenAI wants them right after the assistant message
    that made the calls (Anthropic likewise puts tool results first in a turn). The
    images and documents of tool results open the user message, each result's behind
    a ``TOOL_ATTACHMENTS`` line naming its call.
    """
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    tool_messages: list[Body] = []
    attachments: list[Body] = []
    parts: list[Body] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}[{index}]"
        if block.get("type") == "tool_result":
            message, media = _tool_message(block, at)
            tool_messages.append(message)
            if media:
                label = TOOL_ATTACHMENTS.format(call_id=message["tool_call_id"])
                attachments.extend([{"type": "text", "text": label}, *media])
        else:
            parts.extend(_user_part(block, at))
    parts = attachments + parts
    if not parts:
        return tool_messages
    single_text = len(parts) == 1 and parts[0]["type"] == "text"
    user: Body = {"role": "user", "content": parts[0]["text"] if single_text else parts}
    return [*tool_messages, user]


def _user_part(block: Body, where: str) -> list[Body]:
    """The chat content part for a user block (none for empty text)."""
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": block["text"]}] if _text(block, where) else []
    if kind == "image":
        return [_image_part(block.get("source"), f"{where}.source")]
    if kind == "document":
        return [_document_part(block, where)]
    raise BadRequest(
        f"'{where}' is a '{kind}' block, which an OpenAI model cannot take.", param=where
    )


def _image_part(source: Any, where: str) -> Body:
    """An ``image_url`` part: base64 sources become data URLs, URL sources stay URLs."""
    source = source if isinstance(source, dict) else {}
    media_type, data, url = source.get("media_type"), source.get("data"), source.get("url")
    if source.get("type") == "base64" and isinstance(media_type, str) and isinstance(data, str):
        url = f"data:{media_type};base64,{data}"
    elif source.get("type") != "url" or not isinstance(url, str):
        raise BadRequest(
            f"'{where}' must be a base64 or url image source for an OpenAI model.",
            param=where,
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: Body, where: str) -> Body:
    """A ``file`` part for a base64 PDF; a text part for a plain-text document."""
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    kind, media_type, data = source.get("type"), source.get("media_type"), source.get("data")
    if kind == "base64" and media_type == "application/pdf" and isinstance(data, str):
        filename = block.get("title") or "document.pdf"
        data_url = f"data:application/pdf;base64,{data}"
        return {"type": "file", "file": {"filename": filename, "file_data": data_url}}
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": data}
    raise BadRequest(
        f"'{where}.source' must be a base64 PDF or a text source for an OpenAI model.",
        param=f"{where}.source",
    )


def _tool_message(block: Body, where: str) -> tuple[Body, list[Body]]:
    """A ``tool`` message answering the call with the same id (the result's text), and
    the result's images and PDFs as parts for the user message that follows."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise BadRequest(f"'{where}.tool_use_id' must be a string.", param=f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    media: list[Body] = []
    if content is not None:
        for index, inner in enumerate(_blocks(content, f"{where}.content")):
            at = f"{where}.content[{index}]" if isinstance(content, list) else f"{where}.content"
            if inner.get("type") not in ("text", "image", "document"):
                raise BadRequest(
                    f"'{at}' is a '{inner.get('type')}' block; a tool result for an OpenAI "
                    "model may hold text, images and documents.",
                    param=at,
                )
            for part in _user_part(inner, at):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
    text = "\n".join(texts)
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}, media


def _assistant_messages(content: Any, where: str) -> list[Body]:
    """One assistant message: the text joined, ``tool_use`` blocks as tool calls.

    Thinking blocks are dropped; an assistant turn left empty is dropped too.
    """
    texts: list[str] = []
    calls: list[Body] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}[{index}]" if isinstance(content, list) else where
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind not in _THINKING:
            raise BadRequest(
                f"'{at}' is a '{kind}' block, which an OpenAI model cannot take.", param=at
            )
    if not texts and not calls:
        return []
    message: Body = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_call(block: Body, where: str) -> Body:
    """A function tool call with the block's id and its input as a JSON string."""
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise BadRequest(f"'{where}' needs a string 'id' and 'name'.", param=where)
    if not isinstance(arguments, dict):
        raise BadRequest(f"'{where}.input' must be an object.", param=f"{where}.input")
    function = {"name": name, "arguments": orjson.dumps(arguments).decode()}
    return {"id": call_id, "type": "function", "function": function}
