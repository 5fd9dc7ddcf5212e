"""OpenAI chat.completions -> AWS Bedrock Converse, and the answer back.

Request (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html):

    system / developer messages      -> system [{"text"}] (in order)
    user / assistant messages        -> messages with content blocks; neighbours with the
                                        same role are merged (Converse wants alternation)
    text parts                       -> {"text"} (empty texts are left out: Converse
                                        rejects blank text blocks)
    image_url (data: URL)            -> {"image": {"format", "source": {"bytes"}}} for PNG,
                                        JPEG, GIF and WebP; http(s) URLs -> 400
    file (data: URL)                 -> {"document": {"format", "name", "source"}}
    assistant tool_calls             -> {"toolUse": {"toolUseId", "name", "input"}}, ids kept
    tool messages                    -> {"toolResult": {"toolUseId", "content": [{"text"}]}}
                                        in a user message, ids kept
    tools (functions)                -> toolConfig.tools[].toolSpec {name, description,
                                        inputSchema.json}
    tool_choice auto/required/named  -> toolConfig.toolChoice auto/any/tool
    tool_choice none                 -> no toolConfig (Converse has no "none"); when the
                                        history holds tool blocks, which need a toolConfig,
                                        the tools are sent with no toolChoice and the
                                        choice is dropped with a log line
    max_completion_tokens/max_tokens,
    temperature, top_p, stop         -> inferenceConfig maxTokens, temperature, topP,
                                        stopSequences
    n above 1, audio parts,
    functions/function_call          -> 400
    anything else                    -> dropped with a log line

Converse refuses tool blocks in the history when the request has no toolConfig, so a
conversation with tool calls must keep sending its ``tools``; that 400 comes from AWS.

Responses and streams go back through ``openai_to_bedrock_response``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import BadRequest
from tollway.translate.base import Body, StreamTranslator, Translator, dropped
from tollway.translate.openai_chat import (
    append_turn,
    as_object,
    chosen_function,
    content_text,
    data_url,
    function_tool,
    reject_legacy_functions,
    wants_usage,
)
from tollway.translate.openai_to_bedrock_response import ConverseChatStream, chat_completion

_TARGET = "bedrock.converse"
_HANDLED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "tools", "tool_choice",
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
    }
)  # fmt: skip
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9 ()\[\]-]+")


class OpenAIChatToBedrock(Translator):
    """chat.completions request -> Converse; response and stream back."""

    client_endpoint = Endpoint.CHAT_COMPLETIONS
    upstream_endpoint = Endpoint.CONVERSE

    def request(self, upstream_model: str) -> Body:
        """The Converse body (the model id goes in the URL, not the body)."""
        body = self.client_body
        reject_legacy_functions(body)
        if isinstance(body.get("n"), int) and body["n"] > 1:
            raise BadRequest("Bedrock returns one choice per request; 'n' must be 1.", param="n")
        for key in body:
            if key not in _HANDLED:
                dropped(key, _TARGET)
        system, messages = _messages(body.get("messages") or [])
        out: Body = {"messages": messages}
        if system:
            out["system"] = system
        inference = _inference_config(body)
        if inference:
            out["inferenceConfig"] = inference
        tool_config = _tool_config(body, messages)
        if tool_config:
            out["toolConfig"] = tool_config
        return out

    def response(self, upstream_body: Body) -> Body:
        """A chat.completion from a Converse response."""
        return chat_completion(upstream_body, str(self.client_body.get("model", "")))

    def stream(self) -> StreamTranslator:
        """Translates this call's ConverseStream events into chunks."""
        model = str(self.client_body.get("model", ""))
        return ConverseChatStream(model, wants_usage(self.client_body))


def _messages(messages: list[Any]) -> tuple[list[Body], list[Body]]:
    system: list[Body] = []
    out: list[Body] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, where, text_only=True))
        elif role == "user":
            append_turn(out, "user", "content", _blocks(content, where, text_only=False))
        elif role == "assistant":
            blocks = _blocks(content, where, text_only=True)
            blocks.extend(_tool_uses(message.get("tool_calls") or [], where))
            append_turn(out, "assistant", "content", blocks)
        elif role == "tool":
            result = {
                "toolUseId": str(message.get("tool_call_id", "")),
                "content": [{"text": content_text(content)}],
            }
            append_turn(out, "user", "content", [{"toolResult": result}])
        else:
            raise BadRequest(f"{where}.role: unsupported role '{role}'.", param=f"{where}.role")
    return system, out


def _blocks(content: Any, where: str, *, text_only: bool) -> list[Body]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or an array.", param=where)
    blocks: list[Body] = []
    for position, item in enumerate(content):
        part_where = f"{where}.content[{position}]"
        part = as_object(item, part_where)
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if isinstance(text, str) and text.strip():
                blocks.append({"text": text})
        elif not text_only and kind == "image_url":
            blocks.append({"image": _image(as_object(part.get(kind), part_where), part_where)})
        elif not text_only and kind == "file":
            file = as_object(part.get(kind), part_where)
            blocks.append({"document": _document(file, part_where)})
        else:
            raise BadRequest(
                f"{part_where}: content of type '{kind}' cannot be sent to Bedrock.",
                param=f"{where}.content",
            )
    return blocks


def _image(image: Body, where: str) -> Body:
    mime, data = data_url(image.get("url"), where, "Bedrock")
    if mime not in _IMAGE_FORMATS:
        raise BadRequest(f"{where}: Bedrock takes PNG, JPEG, GIF or WebP images.", param=where)
    return {"format": _IMAGE_FORMATS[mime], "source": {"bytes": data}}


def _document(file: Body, where: str) -> Body:
    mime, data = data_url(file.get("file_data"), where, "Bedrock")
    if mime not in _DOCUMENT_FORMATS:
        raise BadRequest(f"{where}: Bedrock cannot read files of type {mime}.", param=where)
    # Converse names must be plain: letters, digits, spaces, hyphens, parentheses, brackets.
    stem = str(file.get("filename") or "document").rsplit(".", 1)[0]
    name = " ".join(_DOCUMENT_NAME.sub(" ", stem).split()) or "document"
    return {"format": _DOCUMENT_FORMATS[mime], "name": name, "source": {"bytes": data}}


def _tool_uses(calls: list[Any], where: str) -> list[Body]:
    blocks: list[Body] = []
    for position, item in enumerate(calls):
        call_where = f"{where}.tool_calls[{position}]"
        call = as_object(item, call_where)
        function = as_object(call.get("function"), f"{call_where}.function")
        use = {
            "toolUseId": str(call.get("id", "")),
            "name": str(function.get("name", "")),
            "input": _arguments(function.get("arguments"), call_where),
        }
        blocks.append({"toolUse": use})
    return blocks


def _arguments(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        return orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequest(
            f"{where}.function.arguments is not valid JSON.", param=f"{where}.function"
        ) from None


def _inference_config(body: Body) -> Body:
    config: Body = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        config["maxTokens"] = limit
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def _tool_config(body: Body, messages: list[Body]) -> Body | None:
    tools = [_tool_spec(item, index) for index, item in enumerate(body.get("tools") or [])]
    if not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        history = any(
            "toolUse" in block or "toolResult" in block
            for message in messages
            for block in message["content"]
        )
        if not history:
            return None
        dropped("tool_choice", _TARGET)
        return {"tools": tools}
    config: Body = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": chosen_function(choice)}}
    elif choice is not None:
        raise BadRequest(f"tool_choice: unsupported value {choice!r}.", param="tool_choice")
    return config


def _tool_spec(item: Any, index: int) -> Body:
    function = function_tool(item, index, "Bedrock")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec: Body = {"name": function.get("name", ""), "inputSchema": {"json": schema}}
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}
