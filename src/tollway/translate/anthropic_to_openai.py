"""Anthropic Messages client -> OpenAI Chat Completions upstream.

References: https://docs.anthropic.com/en/api/messages and
https://platform.openai.com/docs/api-reference/chat/create (function calling:
https://platform.openai.com/docs/guides/function-calling).

Request rules:

- ``system`` (a string or text blocks) -> one ``system`` message per text, first.
- ``system`` turns inside ``messages`` (mid-conversation system messages) -> one
  ``system`` message per text at the same position; chat takes them anywhere.
- ``user`` turns: text blocks -> text parts (a lone text -> string content); image
  blocks -> ``image_url`` parts (base64 sources -> ``data:`` URLs, URL sources kept);
  base64 PDF documents -> ``file`` parts with ``file_data``; plain-text documents ->
  text parts; ``tool_result`` blocks -> one ``tool`` message each, same ids, placed
  before the rest of the turn, their text blocks joined by newlines, ``is_error``
  noted by an ``Error: `` prefix. OpenAI tool messages carry text only, so a tool
  result's images and PDFs open the user message that follows the tool messages,
  behind a line naming the call (``TOOL_ATTACHMENTS``); other blocks in a tool result
  -> 400.
- ``assistant`` turns: text blocks joined -> ``content`` (null when only tools were
  called); ``tool_use`` blocks -> ``tool_calls`` (same ids, input as a JSON string);
  thinking and redacted thinking blocks, signed or not, are dropped (an OpenAI model
  cannot take them back). Other block kinds (server tool results, say) -> 400.
- ``cache_control`` on system blocks, content blocks, tool results and tools is
  dropped without a word: OpenAI caches prompt prefixes by itself
  (https://platform.openai.com/docs/guides/prompt-caching); a top-level one is dropped
  with a log line, as below.
- ``max_tokens`` -> ``max_completion_tokens`` (``max_tokens_field``): the current name,
  and the only one OpenAI's reasoning models accept.
- ``temperature``, ``top_p`` copied; ``stop_sequences`` -> ``stop``;
  ``metadata.user_id`` -> ``user``.
- ``stream: true`` -> ``stream`` with ``stream_options.include_usage``: the gateway
  meters every call, and Anthropic clients always get usage.
- ``tools``: ``{name, description, input_schema}`` -> function tools (``strict`` is
  dropped with a log line); server tools (web search, code execution, ...) -> 400.
- ``tool_choice``: ``auto`` / ``any`` / ``tool`` / ``none`` -> ``auto`` / ``required`` /
  a named function / ``none``; ``disable_parallel_tool_use: true`` ->
  ``parallel_tool_calls: false`` (when tools are sent).
- ``output_config.format`` (a JSON schema) -> ``response_format`` ``json_schema`` named
  ``response``; ``output_config.effort`` is dropped with a log line.
- 400: ``mcp_servers`` (the OpenAI model cannot reach them).
- ``thinking`` is dropped with a log line: a chat model that reasons does so without
  being asked, and one that does not rejects ``reasoning_effort``. When the client
  asked for thinking (any type but ``disabled``), reasoning an OpenAI-compatible server
  returns (``reasoning_content`` or ``reasoning``) comes back as a ``thinking`` block
  with an empty signature, first; otherwise it is left out.
- Dropped with a log line: ``top_k`` (Chat Completions has none), ``service_tier``,
  ``container``, ``context_management``, ``inference_geo``, ``speed``, top-level
  ``cache_control``, and any parameter this module does not know.

Response rules (``anthropic_to_openai_response``): the id is the completion's behind
``msg_``; the first choice's reasoning -> a thinking block (only when the client asked
for thinking, see above), its text (or refusal) -> a text block, its tool calls ->
``tool_use`` blocks with ``input`` parsed from the arguments (arguments that are not a
JSON object -> 502); ``stop`` -> ``end_turn`` (or ``refusal`` when the message is a
refusal; OpenAI does not say whether a stop sequence matched, so ``stop_sequence`` is
never reported and always null), ``length`` -> ``max_tokens``,
``tool_calls``/``function_call`` -> ``tool_use``, ``content_filter`` -> ``refusal``;
``input_tokens`` = prompt tokens minus cached ones, ``cache_read_input_tokens`` =
cached, ``cache_creation_input_tokens`` = 0. Streams: ``anthropic_to_openai_stream``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tollway.dialects.endpoints import Endpoint
from tollway.errors import BadRequest
from tollway.translate.anthropic_to_openai_messages import convert_messages, convert_system
from tollway.translate.anthropic_to_openai_response import anthropic_message
from tollway.translate.anthropic_to_openai_stream import ChatChunksToMessageEvents
from tollway.translate.base import Body, StreamTranslator, Translator, dropped

_TARGET = "openai.chat.completions"
_HANDLED = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p",
        "stop_sequences", "stream", "tools", "tool_choice", "metadata", "output_config",
        "mcp_servers",
    }
)  # fmt: skip
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


class AnthropicToOpenAIChat(Translator):
    """An Anthropic-dialect client calling a model served by an OpenAI-type provider."""

    client_endpoint = Endpoint.MESSAGES
    upstream_endpoint = Endpoint.CHAT_COMPLETIONS

    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    """Where ``max_tokens`` goes; a provider that knows only ``max_tokens`` overrides it."""

    def request(self, upstream_model: str) -> Body:
        """The chat completion request for the client's Messages request."""
        body = self.client_body
        if body.get("mcp_servers"):
            raise BadRequest(
                "'mcp_servers' cannot be reached by an OpenAI model; call the tools "
                "yourself and send their results.",
                param="mcp_servers",
            )
        messages = convert_system(body.get("system")) + convert_messages(body["messages"])
        upstream: Body = {"model": upstream_model, "messages": messages}
        upstream[self.max_tokens_field] = body["max_tokens"]
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                upstream[name] = body[name]
        if body.get("stop_sequences"):
            upstream["stop"] = list(body["stop_sequences"])
        _convert_tools(body, upstream)
        _convert_output_config(body.get("output_config"), upstream)
        user = (body.get("metadata") or {}).get("user_id")
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
        """The Anthropic message for a chat completion."""
        return anthropic_message(upstream_body, self._wants_thinking())

    def stream(self) -> StreamTranslator:
        """Chat completion chunks in, Anthropic events out."""
        return ChatChunksToMessageEvents(self._wants_thinking())

    def _wants_thinking(self) -> bool:
        thinking = self.client_body.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled")


def _convert_tools(body: Body, upstream: Body) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("'tools' must be an array.", param="tools")
        upstream["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in _TOOL_CHOICES:
        upstream["tool_choice"] = _TOOL_CHOICES[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        upstream["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest(
            "'tool_choice' must be of type auto, any, tool (with a name) or none.",
            param="tool_choice",
        )
    if choice.get("disable_parallel_tool_use") and upstream.get("tools"):
        upstream["parallel_tool_calls"] = False


def _tool(tool: Any, where: str) -> Body:
    """A function tool from an Anthropic client tool definition."""
    if not isinstance(tool, dict):
        raise BadRequest(f"'{where}' must be an object.", param=where)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise BadRequest(
            f"'{where}' is a '{kind}' server tool, which an OpenAI model cannot run.",
            param=where,
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string.", param=f"{where}.name")
    function: Body = {"name": name}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    if tool.get("strict") is not None:
        dropped(f"{where}.strict", _TARGET)
    return {"type": "function", "function": function}


def _convert_output_config(config: Any, upstream: Body) -> None:
    if not isinstance(config, dict):
        return
    if config.get("effort") is not None:
        dropped("output_config.effort", _TARGET)
    output_format = config.get("format")
    if output_format is None:
        return
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    if not isinstance(schema, dict):
        raise BadRequest(
            "'output_config.format' must be a json_schema format with a schema.",
            param="output_config.format",
        )
    upstream["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
