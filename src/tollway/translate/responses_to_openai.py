"""OpenAI Responses client -> OpenAI Chat Completions upstream (and, composed with the
chat pairings, Anthropic, Gemini and Bedrock upstreams).

References: https://platform.openai.com/docs/api-reference/responses/create and
https://platform.openai.com/docs/api-reference/chat/create.

Request rules:

- ``instructions`` -> a first ``system`` message. ``input``: a string -> one user
  message; a list of items, in order:
  - messages (``type: message`` or just a ``role``): ``developer``/``system`` ->
    ``system``, ``user`` and ``assistant`` kept; ``input_text``/``output_text`` parts ->
    text parts (an assistant's text joined into its ``content``), ``input_image`` with an
    ``image_url`` -> ``image_url`` parts (``detail`` kept), ``input_file`` with
    ``file_data`` -> ``file`` parts, ``refusal`` parts -> text; file ids -> 400 (the
    upstream cannot open OpenAI's file store).
  - ``function_call`` -> a ``tool_calls`` entry (``call_id`` -> id) on the assistant
    message just before it, or a new one; ``custom_tool_call`` likewise, its ``input``
    as the ``{"input": ...}`` arguments of the function it was translated to.
  - ``function_call_output`` / ``custom_tool_call_output`` -> ``tool`` messages; a list
    output's text parts are joined, other parts dropped with a log line.
  - ``reasoning`` items are skipped (a chat model cannot take reasoning back); items of
    server tools (web search, file search, computer use, ...) are dropped with a log
    line; ``item_reference`` and unknown items -> 400.
- ``tools``: function tools -> chat function tools (``strict`` kept); custom tools
  (free-form input, e.g. Codex's ``apply_patch``) -> a function taking one string
  ``input`` (the grammar goes into the description); a ``namespace`` of tools -> its
  tools as functions named ``<namespace>__<name>`` (its description prefixed to
  theirs); server tools (web search, file search, code interpreter, ...) are dropped
  with a log line.
- ``tool_choice``: ``auto``/``none``/``required`` kept; a named function or custom tool ->
  a named function; ``allowed_tools`` -> its mode (the allow-list is dropped with a log
  line); a server tool -> ``auto``. ``parallel_tool_calls`` kept when tools are sent.
- ``max_output_tokens`` -> ``max_completion_tokens``; ``temperature``, ``top_p`` kept;
  ``reasoning.effort`` -> ``reasoning_effort``; ``text.format`` -> ``response_format``
  (``json_schema`` with its name, schema and strict flag; ``json_object``);
  ``user`` or ``safety_identifier`` -> ``user``. ``stream: true`` -> a stream with usage
  (``stream_options.include_usage``): the gateway meters every call.
- State: a translated call keeps nothing server-side, so ``previous_response_id`` and
  ``conversation`` -> 400 (send the whole conversation in ``input``), ``background:
  true`` -> 400, and ``store`` is ignored (the answer says ``"store": false``).
- Dropped with a log line: ``text.verbosity``, ``metadata``, ``include``,
  ``truncation``, ``service_tier``, ``prompt_cache_key``, ``max_tool_calls``,
  ``top_logprobs`` and any parameter this module does not know.

Response rules (``responses_to_openai_response``) and streams
(``responses_to_openai_stream``) are documented in their modules.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint
from tollway.errors import BadRequest
from tollway.translate.base import Body, StreamTranslator, Translator, dropped, log
from tollway.translate.openai_chat import as_object
from tollway.translate.responses_to_openai_response import ToolNames, response_object
from tollway.translate.responses_to_openai_stream import ChatChunksToResponseEvents

_TARGET = "openai.chat.completions"
_HANDLED = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p",
        "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text", "user",
        "safety_identifier", "stream", "stream_options", "store", "previous_response_id",
        "conversation", "background",
    }
)  # fmt: skip
_ROLES = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}
_SERVER_ITEMS = frozenset(
    {
        "web_search_call", "file_search_call", "computer_call", "computer_call_output",
        "code_interpreter_call", "image_generation_call", "mcp_call", "mcp_list_tools",
        "mcp_approval_request", "mcp_approval_response", "local_shell_call",
        "local_shell_call_output",
    }
)  # fmt: skip
_CUSTOM_PARAMETERS: Body = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input."}},
    "required": ["input"],
    "additionalProperties": False,
}


class ResponsesToOpenAIChat(Translator):
    """A Responses-API client calling a model served by a chat-completions upstream."""

    client_endpoint = Endpoint.RESPONSES
    upstream_endpoint = Endpoint.CHAT_COMPLETIONS

    def __init__(self, client_body: Body) -> None:
        super().__init__(client_body)
        self.names = ToolNames()

    def request(self, upstream_model: str) -> Body:
        """The chat completion request for the client's Responses request."""
        body = self.client_body
        _refuse_state(body)
        messages: list[Body] = []
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            messages.append({"role": "system", "content": instructions})
        messages.extend(convert_input(body.get("input")))
        upstream: Body = {"model": upstream_model, "messages": messages}
        if body.get("max_output_tokens") is not None:
            upstream["max_completion_tokens"] = body["max_output_tokens"]
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                upstream[name] = body[name]
        self._convert_tools(body, upstream)
        _convert_reasoning(body.get("reasoning"), upstream)
        _convert_text(body.get("text"), upstream)
        user = body.get("user") or body.get("safety_identifier")
        if isinstance(user, str) and user:
            upstream["user"] = user
        if body.get("stream"):
            upstream["stream"] = True
            upstream["stream_options"] = {"include_usage": True}
        for name in body.keys() - _HANDLED:
            if body[name] is not None:
                dropped(name, _TARGET)
        return upstream

    def response(self, upstream_body: Body) -> Body:
        """The Responses object for a chat completion."""
        return response_object(upstream_body, self.client_body, self.names)

    def stream(self) -> StreamTranslator:
        """Chat completion chunks in, Responses events out."""
        return ChatChunksToResponseEvents(self.client_body, self.names)

    def _convert_tools(self, body: Body, upstream: Body) -> None:
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise BadRequest("'tools' must be an array.", param="tools")
            converted = [
                function
                for i, tool in enumerate(tools)
                for function in self._tools(tool, f"tools[{i}]")
            ]
            if converted:
                upstream["tools"] = converted
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None and upstream.get("tools"):
            upstream["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool) and upstream.get("tools"):
            upstream["parallel_tool_calls"] = body["parallel_tool_calls"]

    def _tools(self, item: Any, where: str) -> list[Body]:
        """The chat functions for one client tool (several for a namespace)."""
        tool = as_object(item, where)
        kind = tool.get("type")
        if kind == "namespace":
            namespace = tool.get("name")
            inner = tool.get("tools")
            if not isinstance(namespace, str) or not namespace or not isinstance(inner, list):
                raise BadRequest(f"'{where}' needs a name and tools.", param=where)
            prefix = tool.get("description")
            return [
                self._function(as_object(entry, f"{where}.tools[{i}]"), f"{where}.tools[{i}]",
                               namespace, prefix if isinstance(prefix, str) else None)
                for i, entry in enumerate(inner)
            ]  # fmt: skip
        if kind not in ("function", "custom"):
            dropped(f"{where} ({kind})", _TARGET)
            return []
        return [self._function(tool, where, None, None)]

    def _function(self, tool: Body, where: str, namespace: str | None, prefix: str | None) -> Body:
        kind = tool.get("type")
        name = tool.get("name")
        if kind not in ("function", "custom"):
            raise BadRequest(f"'{where}' must be a function or custom tool.", param=where)
        if not isinstance(name, str) or not name:
            raise BadRequest(f"'{where}.name' must be a non-empty string.", param=f"{where}.name")
        function: Body = {"name": self.names.add(namespace, name, kind == "custom")}
        description = tool.get("description")
        if prefix:
            description = f"{prefix}\n\n{description}" if description else prefix
        if kind == "custom":
            grammar = tool.get("format")
            note = "Put the tool's whole free-form input in `input`."
            if isinstance(grammar, dict) and isinstance(grammar.get("definition"), str):
                note += f" It must follow this {grammar.get('syntax', '')} grammar:\n"
                note += grammar["definition"]
            function["description"] = f"{description}\n\n{note}" if description else note
            function["parameters"] = _CUSTOM_PARAMETERS
        else:
            if isinstance(description, str):
                function["description"] = description
            function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
            if isinstance(tool.get("strict"), bool):
                function["strict"] = tool["strict"]
        return {"type": "function", "function": function}


def _refuse_state(body: Body) -> None:
    for name in ("previous_response_id", "conversation"):
        if body.get(name):
            raise BadRequest(
                f"'{name}' is not supported for this model: its provider does not serve "
                "the Responses API and the gateway keeps no conversation state; send the "
                "whole conversation in 'input'.",
                param=name,
            )
    if body.get("background"):
        raise BadRequest(
            "'background' is not supported for this model; send a streamed request.",
            param="background",
        )


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        raise BadRequest(
            "'tool_choice' must be auto, none, required or an object.", param="tool_choice"
        )
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        dropped("tool_choice.tools", _TARGET)
        return "required" if choice.get("mode") == "required" else "auto"
    dropped(f"tool_choice ({kind})", _TARGET)
    return "auto"


def _convert_reasoning(reasoning: Any, upstream: Body) -> None:
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        upstream["reasoning_effort"] = reasoning["effort"]


def _convert_text(text: Any, upstream: Body) -> None:
    if not isinstance(text, dict):
        return
    if text.get("verbosity") is not None:
        dropped("text.verbosity", _TARGET)
    output_format = text.get("format")
    if not isinstance(output_format, dict):
        return
    kind = output_format.get("type")
    if kind == "json_schema":
        schema: Body = {
            "name": output_format.get("name") or "response",
            "schema": output_format.get("schema") or {},
        }
        if isinstance(output_format.get("strict"), bool):
            schema["strict"] = output_format["strict"]
        upstream["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind == "json_object":
        upstream["response_format"] = {"type": "json_object"}


# ---------------------------------------------------------------------------------- input


def convert_input(value: Any) -> list[Body]:
    """Chat messages for a Responses ``input`` (a string or a list of items)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise BadRequest("'input' must be a string or an array of items.", param="input")
    messages: list[Body] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        entry = as_object(item, where)
        kind = entry.get("type") or ("message" if "role" in entry else None)
        if kind == "message":
            _add_message(messages, entry, where)
        elif kind in ("function_call", "custom_tool_call"):
            _add_call(messages, entry, where)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(_tool_output(entry, where))
        elif kind == "reasoning":
            continue  # the chat model reasons afresh
        elif kind in _SERVER_ITEMS:
            dropped(f"{where} ({kind})", _TARGET)
        else:
            raise BadRequest(
                f"'{where}' is a '{kind}' item, which cannot be sent to this model.",
                param=where,
            )
    return messages


def _add_message(messages: list[Body], item: Body, where: str) -> None:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise BadRequest(
            f"'{where}.role' must be user, assistant, system or developer.", param=f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        messages.append({"role": role, "content": content})
        return
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array.", param=where)
    converted = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    parts = [part for part in converted if part is not None]
    if role == "user":
        messages.append({"role": role, "content": parts})
    else:  # system and assistant messages take text
        text = "".join(str(part.get("text", "")) for part in parts if part["type"] == "text")
        messages.append({"role": role, "content": text})


def _part(value: Any, where: str) -> Body | None:
    part = as_object(value, where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise BadRequest(
                f"'{where}': send images as an image_url (a file id cannot be opened by "
                "this model's provider).",
                param=where,
            )
        image: Body = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise BadRequest(
                f"'{where}': send files inline as file_data (a file id or URL cannot be "
                "opened by this model's provider).",
                param=where,
            )
        file: Body = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    dropped(f"{where} ({kind})", _TARGET)
    return None


def _add_call(messages: list[Body], item: Body, where: str) -> None:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise BadRequest(f"'{where}' needs a call_id and a name.", param=where)
    namespace = item.get("namespace")
    name = ToolNames.chat_name(namespace if isinstance(namespace, str) else None, name)
    if item.get("type") == "custom_tool_call":
        arguments = orjson.dumps({"input": str(item.get("input") or "")}).decode()
    else:
        raw = item.get("arguments")
        arguments = raw if isinstance(raw, str) else orjson.dumps(raw or {}).decode()
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if not last.get("content"):
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(item: Body, where: str) -> Body:
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise BadRequest(f"'{where}.call_id' must be a string.", param=f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for part in output:
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
                texts.append(str(part.get("text") or ""))
            else:
                log.info("non-text tool output dropped", extra={"fields": {"where": where}})
        output = "\n".join(texts)
    elif not isinstance(output, str):
        output = orjson.dumps(output).decode()
    return {"role": "tool", "tool_call_id": call_id, "content": output}
