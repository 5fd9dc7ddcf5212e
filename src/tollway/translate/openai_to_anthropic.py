"""OpenAI Chat Completions client -> Anthropic Messages upstream.

References: https://platform.openai.com/docs/api-reference/chat/create and
https://docs.anthropic.com/en/api/messages (tool use:
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use).

Request rules:

- ``system`` and ``developer`` messages, wherever they appear, become ``system`` in order:
  a string when there is one unmarked text, text blocks otherwise.
- ``user`` content: text parts -> text blocks; ``image_url`` parts -> image blocks
  (``data:`` URLs -> base64 sources with their media type, which must be JPEG, PNG, GIF
  or WebP; http(s) URLs -> URL sources; ``detail`` is ignored); ``file`` parts with
  PDF ``file_data`` -> document blocks. Audio, file ids and other parts -> 400.
- ``assistant`` messages: ``thinking_blocks`` (as this gateway returns them) -> the
  turn's first blocks, signed thinking and redacted thinking only (others are dropped
  with a log line; ``reasoning_content`` is ignored: Anthropic takes back only signed
  thinking); text (or ``refusal``) -> text blocks; ``tool_calls`` -> ``tool_use``
  blocks with the same ids and the arguments parsed (arguments that are not a JSON
  object -> 400 naming the field; empty arguments mean ``{}``). The deprecated
  ``function_call`` -> 400.
- ``tool`` messages -> ``tool_result`` blocks (same ids) in a user turn; their text,
  ``image_url`` and PDF ``file`` parts become the result's blocks as in user content.
- ``cache_control`` (LiteLLM's convention for OpenAI-shaped requests) goes to
  Anthropic unchanged, ``ttl`` and all: from a content part to its block, from a tool
  to its definition, and from a message to the message's last block
  (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching).
- Consecutive turns of the same Anthropic role are merged (Anthropic requires user and
  assistant to alternate), so tool results answering parallel calls share one user
  turn; within a turn tool results come first, as Anthropic requires. Empty messages
  are left out. A turn of a single text block is sent as a string. ``name`` is ignored.
- ``max_completion_tokens`` or ``max_tokens`` -> ``max_tokens``; Anthropic requires it,
  so ``DEFAULT_MAX_TOKENS`` is sent when the client gave neither.
- ``temperature``, ``top_p`` and ``stream`` are copied (Anthropic's temperature range is
  0-1; higher values are the upstream's to reject). ``stop`` (string or list) ->
  ``stop_sequences``. ``user`` (or else ``safety_identifier``) -> ``metadata.user_id``.
- ``reasoning_effort`` -> ``thinking: {type: enabled, budget_tokens}`` with the budget in
  ``THINKING_BUDGETS`` (``none``: no thinking; another value -> 400). OpenAI counts
  reasoning within the client's token limit and Anthropic counts thinking within
  ``max_tokens``, so the limit is kept and the budget lowered below it; without a
  limit, ``max_tokens`` is the budget plus ``DEFAULT_MAX_TOKENS``. Where Anthropic
  refuses thinking, ``reasoning_effort`` is dropped with a log line: a limit of 1,024
  or less (the smallest budget), a forced tool choice (``required`` or a named
  function), a last assistant message (a prefill), or tool results answering an
  assistant message sent back without its ``thinking_blocks``. With thinking on,
  ``temperature`` other than 1 and ``top_p`` below 0.95 are dropped with a log line.
- ``tools``: function definitions -> ``{name, description, input_schema}`` (no
  ``parameters`` -> an empty object schema); ``strict`` is dropped (strict tool use is
  model-dependent at Anthropic); custom tools -> 400.
- ``tool_choice``: ``auto`` / ``none`` / ``required`` / a named function ->
  ``auto`` / ``none`` / ``any`` / ``tool``; ``allowed_tools`` -> 400.
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use: true`` (when tools are
  sent and the choice is not ``none``).
- ``response_format``: ``text`` -> nothing; ``json_schema`` -> ``output_config.format``
  (Anthropic structured outputs,
  https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs);
  ``json_object`` (no schema to enforce) -> 400.
- 400, naming the parameter: ``n`` above 1, ``logprobs``, ``top_logprobs``, ``audio``,
  ``modalities`` other than text, ``web_search_options``, ``functions`` and
  ``function_call`` (send ``tools``).
- Dropped with a log line: ``presence_penalty``, ``frequency_penalty``, ``seed``,
  ``logit_bias``, ``service_tier``, ``store``, ``metadata`` (Anthropic's holds only a
  user id), ``verbosity``, ``prediction``, prompt cache options, and any parameter
  this module does not know.

Response rules (``openai_to_anthropic_response``): the id is Anthropic's behind
``chatcmpl-``; text blocks are joined into ``content`` (null when there is none);
``tool_use`` blocks -> ``tool_calls`` with JSON-string arguments; the texts of thinking
blocks, joined by a blank line, -> ``reasoning_content`` (the field DeepSeek, vLLM and
others use), and every thinking and redacted thinking block, with its signature, ->
``thinking_blocks`` (to send back with the assistant message);
``end_turn``/``stop_sequence``/``pause_turn`` -> ``stop``,
``max_tokens``/``model_context_window_exceeded`` -> ``length``, ``tool_use`` ->
``tool_calls``, ``refusal`` -> ``content_filter``; ``prompt_tokens`` = input + cache
read + cache creation tokens, ``prompt_tokens_details.cached_tokens`` = cache reads.
Streams: ``openai_to_anthropic_stream``.
"""

from __future__ import annotations

from typing import Any

from tollway.dialects.endpoints import Endpoint
from tollway.errors import BadRequest
from tollway.translate.base import Body, StreamTranslator, Translator, dropped
from tollway.translate.openai_chat import wants_usage
from tollway.translate.openai_to_anthropic_messages import cache_mark, convert_messages
from tollway.translate.openai_to_anthropic_response import chat_completion
from tollway.translate.openai_to_anthropic_stream import MessagesToChatChunks

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the client set no limit (Anthropic requires one)."""

THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 28672,
}
"""``thinking.budget_tokens`` per ``reasoning_effort``: from Anthropic's minimum (1,024) up
to a budget that, with ``DEFAULT_MAX_TOKENS`` on top, stays within the 32,768 output
tokens the gateway's budgets assume by default."""

MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest ``budget_tokens``."""

_MIN_THINKING_TOP_P = 0.95
_THINKING_BLOCKS = ("thinking", "redacted_thinking")
_TARGET = "anthropic.messages"
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "stream", "stream_options", "user", "safety_identifier", "tools",
        "tool_choice", "parallel_tool_calls", "response_format", "n", "logprobs",
        "top_logprobs", "audio", "modalities", "web_search_options", "functions",
        "function_call", "reasoning_effort",
    }
)  # fmt: skip
_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


class OpenAIChatToAnthropic(Translator):
    """An OpenAI-dialect client calling a model served by Anthropic."""

    client_endpoint = Endpoint.CHAT_COMPLETIONS
    upstream_endpoint = Endpoint.MESSAGES

    def request(self, upstream_model: str) -> Body:
        """The Messages request for the client's chat completion request."""
        body = self.client_body
        _reject_inexpressible(body)
        system, messages = convert_messages(body["messages"])
        upstream: Body = {"model": upstream_model, "messages": messages}
        if system:
            plain = len(system) == 1 and system[0].keys() == {"type", "text"}
            upstream["system"] = system[0]["text"] if plain else system
        upstream["max_tokens"] = _max_tokens(body)
        _copy_sampling(body, upstream)
        _convert_tools(body, upstream)
        _convert_reasoning(body, upstream)
        _convert_response_format(body.get("response_format"), upstream)
        _convert_user(body, upstream)
        if body.get("stream"):
            upstream["stream"] = True
        for name in body.keys() - _HANDLED:
            if body[name] is not None:
                dropped(name, _TARGET)
        return upstream

    def response(self, upstream_body: Body) -> Body:
        """The chat completion for an Anthropic message."""
        return chat_completion(upstream_body)

    def stream(self) -> StreamTranslator:
        """Anthropic events in, chat completion chunks out."""
        return MessagesToChatChunks(include_usage=wants_usage(self.client_body))


def _reject(param: str, reason: str) -> BadRequest:
    return BadRequest(f"'{param}' {reason}", param=param)


def _reject_inexpressible(body: Body) -> None:
    """400 for parameters whose meaning an Anthropic model cannot honour."""
    if body.get("n") not in (None, 1):
        raise _reject("n", "must be 1: Anthropic models return one choice per request.")
    if body.get("logprobs"):
        raise _reject("logprobs", "is not available from Anthropic models.")
    if body.get("top_logprobs") is not None:
        raise _reject("top_logprobs", "is not available from Anthropic models.")
    if body.get("audio") is not None:
        raise _reject("audio", "is not available from Anthropic models.")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise _reject("modalities", "must be ['text'] for Anthropic models.")
    if body.get("web_search_options") is not None:
        raise _reject("web_search_options", "is not available through this API.")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise _reject(legacy, "is deprecated; send 'tools' and 'tool_choice'.")


def _limit(body: Body) -> Any:
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return body[name]
    return None


def _max_tokens(body: Body) -> Any:
    limit = _limit(body)
    return DEFAULT_MAX_TOKENS if limit is None else limit


def _copy_sampling(body: Body, upstream: Body) -> None:
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            upstream[name] = body[name]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is None:
        return
    if not isinstance(stops, list) or not all(isinstance(item, str) for item in stops):
        raise _reject("stop", "must be a string or an array of strings.")
    if stops:
        upstream["stop_sequences"] = stops


def _convert_user(body: Body, upstream: Body) -> None:
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        upstream["metadata"] = {"user_id": user}


def _convert_tools(body: Body, upstream: Body) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _reject("tools", "must be an array.")
        upstream["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and upstream.get("tools"):
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        upstream["tool_choice"] = choice


def _tool(tool: Any, where: str) -> Body:
    """An Anthropic tool definition from an OpenAI function tool."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    function = tool.get("function") if isinstance(tool, dict) else None
    if kind != "function" or not isinstance(function, dict):
        raise _reject(where, "must be a function tool; Anthropic models take no custom tools.")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _reject(f"{where}.function.name", "must be a non-empty string.")
    converted: Body = {"name": name}
    if function.get("description"):
        converted["description"] = function["description"]
    converted["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        dropped(f"{where}.function.strict", _TARGET)
    return cache_mark(tool, converted)


def _tool_choice(choice: Any) -> Body | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return {"type": _TOOL_CHOICES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and choice.get("type") == "function":
        name = function.get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise _reject(
        "tool_choice",
        "must be 'auto', 'none', 'required' or a named function for Anthropic models.",
    )


def _convert_response_format(response_format: Any, upstream: Body) -> None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if response_format is None or kind == "text":
        return
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            upstream["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            return
    raise _reject(
        "response_format",
        "must be 'text' or 'json_schema' with a schema for Anthropic models; they have no "
        "schema-less JSON mode.",
    )


def _convert_reasoning(body: Body, upstream: Body) -> None:
    """``reasoning_effort`` -> ``thinking`` with the effort's budget, when Anthropic can
    think under the request's other settings (each exception logs a dropped parameter).

    https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
    """
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise _reject("reasoning_effort", f"must be one of none, {', '.join(THINKING_BUDGETS)}.")
    budget = THINKING_BUDGETS[effort]
    limit = _limit(body)
    # Without a client limit, room for the default answer on top of the thinking. With
    # one, it holds: OpenAI counts reasoning in max_completion_tokens as Anthropic counts
    # thinking in max_tokens, and the budget must stay below max_tokens.
    max_tokens = budget + DEFAULT_MAX_TOKENS if limit is None else limit
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET or not _can_think(upstream):
        dropped("reasoning_effort", _TARGET)
        return
    upstream["max_tokens"] = max_tokens
    upstream["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # Thinking takes no temperature change and a top_p of 0.95 to 1 only.
    if upstream.get("temperature", 1) != 1:
        del upstream["temperature"]
        dropped("temperature", _TARGET)
    if upstream.get("top_p", 1) < _MIN_THINKING_TOP_P:
        del upstream["top_p"]
        dropped("top_p", _TARGET)


def _can_think(upstream: Body) -> bool:
    """Whether Anthropic accepts thinking with this request.

    Not with a forced tool choice, nor with a prefilled answer (a last assistant
    turn); and when the request answers tool calls, the assistant turn that made them
    must start with its thinking block, sent back as the gateway returned it.
    """
    if (upstream.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return False
    turns: list[Body] = upstream["messages"]
    if not turns:
        return True
    if turns[-1]["role"] == "assistant":
        return False
    last = turns[-1]["content"]
    if not (isinstance(last, list) and any(block["type"] == "tool_result" for block in last)):
        return True
    calls = turns[-2]["content"] if len(turns) > 1 else []
    return isinstance(calls, list) and bool(calls) and calls[0]["type"] in _THINKING_BLOCKS
