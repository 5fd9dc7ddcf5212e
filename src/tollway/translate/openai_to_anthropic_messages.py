"""OpenAI chat ``messages`` -> Anthropic ``system`` and ``messages``.

The rules are listed in ``openai_to_anthropic``'s docstring; this module holds the
conversion of the conversation itself. Every shape problem becomes a 400 naming the
offending path (``messages[3].tool_calls[0].function.arguments``).
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import BadRequest
from tollway.translate.base import Body, dropped
from tollway.translate.openai_chat import append_turn

# https://docs.anthropic.com/en/docs/build-with-claude/vision
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
_TARGET = "anthropic.messages"


def convert_messages(messages: list[Body]) -> tuple[list[Body], list[Body]]:
    """The Anthropic ``system`` text blocks and ``messages`` for OpenAI chat messages."""
    system: list[Body] = []
    turns: list[Body] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message["role"]
        if role in _SYSTEM_ROLES:
            system.extend(_cached(message, text_blocks(message.get("content"), f"{where}.content")))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            blocks = [_tool_result(message, where)]
        else:
            raise BadRequest(
                f"'{where}.role' is '{role}', which an Anthropic model cannot take; "
                "use system, developer, user, assistant or tool.",
                param=f"{where}.role",
            )
        blocks = _cached(message, blocks)
        append_turn(turns, "assistant" if role == "assistant" else "user", "content", blocks)
    return system, [_finish_turn(turn) for turn in turns]


def cache_mark(source: Any, target: Body) -> Body:
    """``target`` with the ``cache_control`` of ``source``, unchanged, when it has one."""
    mark = source.get("cache_control") if isinstance(source, dict) else None
    return target if mark is None else {**target, "cache_control": mark}


def _cached(message: Body, blocks: list[Body]) -> list[Body]:
    """A message-level ``cache_control`` marks the message's last block."""
    if blocks and message.get("cache_control") is not None:
        blocks[-1] = cache_mark(message, blocks[-1])
    return blocks


def _finish_turn(turn: Body) -> Body:
    """Tool results first (Anthropic requires it), and one plain text block as a string."""
    blocks: list[Body] = turn["content"]
    blocks.sort(key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def text_blocks(content: Any, where: str) -> list[Body]:
    """Text blocks from a string or a list of text parts (empty text is left out)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Body] = []
    for index, part in enumerate(_parts(content, where)):
        blocks.extend(_text_block(part, f"{where}[{index}]"))
    return blocks


def _text_block(part: Body, where: str) -> list[Body]:
    """A text (or refusal) part as a text block; none when it is empty."""
    if part.get("type") not in ("text", "refusal"):
        raise BadRequest(f"'{where}' must be a text part here.", param=where)
    text = part.get("text", part.get("refusal"))
    if not isinstance(text, str):
        raise BadRequest(f"'{where}' needs a string 'text'.", param=where)
    return [cache_mark(part, {"type": "text", "text": text})] if text else []


def _parts(content: Any, where: str) -> list[Body]:
    if not isinstance(content, list) or not all(isinstance(part, dict) for part in content):
        raise BadRequest(f"'{where}' must be a string or an array of content parts.", param=where)
    return content


def _user_blocks(content: Any, where: str) -> list[Body]:
    if content is None or isinstance(content, str):
        return text_blocks(content, where)
    blocks: list[Body] = []
    for index, part in enumerate(_parts(content, where)):
        at = f"{where}[{index}]"
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_block(part, at))
        elif kind == "image_url":
            blocks.append(cache_mark(part, _image_block(part.get("image_url"), f"{at}.image_url")))
        elif kind == "file":
            blocks.append(cache_mark(part, _document_block(part.get("file"), f"{at}.file")))
        else:
            raise BadRequest(
                f"'{at}' is a '{kind}' part, which an Anthropic model cannot take; "
                "send text, image_url or PDF file parts.",
                param=at,
            )
    return blocks


def _image_block(image: Any, where: str) -> Body:
    """An image block: data URLs become base64 sources, http(s) URLs URL sources.

    The ``detail`` hint is ignored: Anthropic sizes images itself.
    """
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequest(f"'{where}.url' must be a string.", param=f"{where}.url")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, f"{where}.url")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise BadRequest(
            f"'{where}.url' holds a '{media_type}' image; Anthropic models take "
            f"{', '.join(sorted(IMAGE_MEDIA_TYPES))}.",
            param=f"{where}.url",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(file: Any, where: str) -> Body:
    """A PDF document block from a file part carrying ``file_data``."""
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise BadRequest(
            f"'{where}' must carry 'file_data' (a base64 data URL); uploaded file ids "
            "exist only at OpenAI.",
            param=where,
        )
    media_type, data = _data_url(data_url, f"{where}.file_data")
    if media_type != "application/pdf":
        raise BadRequest(
            f"'{where}.file_data' is '{media_type}'; Anthropic models take PDF files.",
            param=f"{where}.file_data",
        )
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "document", "source": source}


def _data_url(url: str, where: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:<type>;base64,<data>`` URL."""
    head, comma, data = url.partition(",")
    params = head.removeprefix("data:").split(";")
    if not url.startswith("data:") or not comma or "base64" not in params[1:]:
        raise BadRequest(
            f"'{where}' must be an http(s) URL or a base64 data URL "
            "('data:<media type>;base64,<data>').",
            param=where,
        )
    return params[0].lower(), data


def _assistant_blocks(message: Body, where: str) -> list[Body]:
    if message.get("function_call") is not None:
        raise BadRequest(
            f"'{where}.function_call' is the deprecated form; send 'tool_calls'.",
            param=f"{where}.function_call",
        )
    texts = text_blocks(message.get("content"), f"{where}.content")
    refusal = message.get("refusal")
    if not texts and isinstance(refusal, str) and refusal:
        texts.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise BadRequest(f"'{where}.tool_calls' must be an array.", param=f"{where}.tool_calls")
    uses = [_tool_use(call, f"{where}.tool_calls[{index}]") for index, call in enumerate(calls)]
    thinking = _thinking_blocks(message.get("thinking_blocks"), f"{where}.thinking_blocks")
    return [*thinking, *texts, *uses] if texts or uses else []


def _thinking_blocks(value: Any, where: str) -> list[Body]:
    """The signed and redacted thinking blocks sent back; others (unsigned, Anthropic
    would refuse them) are dropped with a log line."""
    if value is None:
        return []
    blocks: list[Body] = []
    for index, block in enumerate(value if isinstance(value, list) else [value]):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and _signed(block):
            blocks.append({key: block[key] for key in ("type", "thinking", "signature")})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": kind, "data": block["data"]})
        else:
            dropped(f"{where}[{index}]", _TARGET)
    return blocks


def _signed(block: Body) -> bool:
    signature = block.get("signature")
    return isinstance(block.get("thinking"), str) and isinstance(signature, str) and bool(signature)


def _tool_use(call: Any, where: str) -> Body:
    """A ``tool_use`` block with the call's id and its arguments parsed."""
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise BadRequest(
            f"'{where}' must be a function tool call; Anthropic models take no custom tool calls.",
            param=where,
        )
    function = call.get("function")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not isinstance(function, dict):
        raise BadRequest(f"'{where}' needs an 'id' and a 'function'.", param=where)
    name = function.get("name")
    if not isinstance(name, str):
        raise BadRequest(
            f"'{where}.function.name' must be a string.", param=f"{where}.function.name"
        )
    arguments = parse_arguments(function.get("arguments"), f"{where}.function.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def parse_arguments(raw: Any, where: str) -> Body:
    """Tool call arguments (a JSON object in a string) as a dict; empty means none."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise BadRequest(f"'{where}' must be a string of JSON.", param=where)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest(
            f"'{where}' is not a JSON object; Anthropic models need tool call arguments as one.",
            param=where,
        )
    return value


def _tool_result(message: Body, where: str) -> Body:
    """A ``tool_result`` block answering the tool call with the same id."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise BadRequest(f"'{where}.tool_call_id' must be a string.", param=f"{where}.tool_call_id")
    result: Body = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            result["content"] = content
    elif content is not None:
        # Anthropic tool results may hold images and documents as well as text.
        blocks = _user_blocks(content, f"{where}.content")
        if blocks:
            result["content"] = blocks
    return result
