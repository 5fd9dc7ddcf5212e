"""OpenAI chat.completions -> Gemini generateContent, and the answer back.

Request (https://ai.google.dev/api/generate-content#request-body):

    system / developer messages      -> systemInstruction.parts (in order)
    user / assistant messages        -> contents, role "user" / "model"; neighbours with
                                        the same role are merged into one content
    text parts                       -> {"text"}
    image_url / file (data: URLs),
    input_audio                      -> {"inlineData": {"mimeType", "data"}}; http(s) URLs
                                        -> 400 (files are sent inline only)
    assistant tool_calls             -> {"functionCall": {"name", "args"}}
    tool messages                    -> {"functionResponse": {"name", "response"}}, role
                                        "user"; a JSON-object result is the response
                                        itself, anything else is {"output": text}
    tools (functions)                -> tools[0].functionDeclarations, JSON Schema as
                                        parametersJsonSchema
    tool_choice none/auto/required   -> toolConfig.functionCallingConfig.mode NONE/AUTO/ANY
    tool_choice {"function": name}   -> mode ANY, allowedFunctionNames [name]
    temperature, top_p, n, seed,
    presence/frequency_penalty       -> generationConfig temperature, topP, candidateCount,
                                        seed, presencePenalty, frequencyPenalty
    max_completion_tokens/max_tokens -> generationConfig.maxOutputTokens
    stop                             -> generationConfig.stopSequences
    response_format json_object      -> responseMimeType application/json
    response_format json_schema      -> responseMimeType + responseJsonSchema
    anything else                    -> dropped with a log line (``dropped()``); legacy
                                        functions/function_call and non-function tools
                                        are rejected with a 400

Tool-call ids. Gemini function calls usually carry no id, and function responses are
matched by name and position. Each call therefore gets ``call_<n>`` (its position among
the candidate's calls, or the upstream ``id`` when one is sent), and a tool message is
mapped back to the *name* of the most recent assistant call with its ``tool_call_id``.
Ids repeat across turns; that is safe because the lookup walks the conversation in order.

Thought signatures. Gemini 3 models reject a replayed function call without the
``thoughtSignature`` they sent with it. It is handed to the client on the tool call as
``extra_content.google.thought_signature`` (the field Google's own OpenAI-compatible
endpoint uses) and read back from there; when a client dropped it, Gemini 3+ models get
Google's documented placeholder so old or foreign histories still validate
(https://ai.google.dev/gemini-api/docs/thought-signatures).

Responses and streams go back through ``openai_to_gemini_response``.
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
    dig,
    function_tool,
    reject_legacy_functions,
    wants_usage,
)
from tollway.translate.openai_to_gemini_response import GeminiChatStream, chat_completion

_TARGET = "gemini.generate_content"
# Google's documented stand-in for a missing thought signature.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_HANDLED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "tools", "tool_choice",
        "temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty",
        "max_tokens", "max_completion_tokens", "stop", "response_format",
    }
)  # fmt: skip
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_GEMINI_MAJOR = re.compile(r"^(?:models/)?gemini-(\d+)")


class OpenAIChatToGemini(Translator):
    """chat.completions request -> generateContent; response and stream back."""

    client_endpoint = Endpoint.CHAT_COMPLETIONS
    upstream_endpoint = Endpoint.GENERATE_CONTENT

    def request(self, upstream_model: str) -> Body:
        """The generateContent body (the model id goes in the URL, not the body)."""
        body = self.client_body
        reject_legacy_functions(body)
        for key in body:
            if key not in _HANDLED:
                dropped(key, _TARGET)
        system, contents = _contents(body.get("messages") or [], _needs_signature(upstream_model))
        out: Body = {"contents": contents}
        if system:
            out["systemInstruction"] = {"parts": system}
        tools = _tools(body.get("tools"))
        if tools:
            out["tools"] = tools
        if body.get("tool_choice") is not None:
            out["toolConfig"] = {"functionCallingConfig": _tool_choice(body["tool_choice"])}
        config = _generation_config(body)
        if config:
            out["generationConfig"] = config
        return out

    def response(self, upstream_body: Body) -> Body:
        """A chat.completion from a GenerateContentResponse."""
        return chat_completion(upstream_body, str(self.client_body.get("model", "")))

    def stream(self) -> StreamTranslator:
        """Translates this call's streamGenerateContent events into chunks."""
        model = str(self.client_body.get("model", ""))
        return GeminiChatStream(model, wants_usage(self.client_body))


# ------------------------------------------------------------------------------- request


def _needs_signature(model: str) -> bool:
    match = _GEMINI_MAJOR.match(model)
    return match is not None and int(match.group(1)) >= 3


def _contents(messages: list[Any], sign: bool) -> tuple[list[Body], list[Body]]:
    system: list[Body] = []
    contents: list[Body] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, latest assistant wins
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_parts(content, where, text_only=True))
        elif role == "user":
            append_turn(contents, "user", "parts", _parts(content, where, text_only=False))
        elif role == "assistant":
            parts = _parts(content, where, text_only=True)
            parts.extend(_function_calls(message.get("tool_calls") or [], names, sign))
            append_turn(contents, "model", "parts", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            name = names.get(call_id) or message.get("name")
            if not name:
                raise BadRequest(
                    f"{where}.tool_call_id: no earlier assistant tool call has the id "
                    f"'{call_id}'; Gemini needs the function's name.",
                    param=f"{where}.tool_call_id",
                )
            response = {"name": name, "response": _tool_result(content)}
            append_turn(contents, "user", "parts", [{"functionResponse": response}])
        else:
            raise BadRequest(f"{where}.role: unsupported role '{role}'.", param=f"{where}.role")
    return system, contents


def _parts(content: Any, where: str, *, text_only: bool) -> list[Body]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or an array.", param=where)
    parts: list[Body] = []
    for position, item in enumerate(content):
        part = as_object(item, f"{where}.content[{position}]")
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind) or ""
            if text:
                parts.append({"text": text})
        elif not text_only and kind in ("image_url", "file", "input_audio"):
            parts.append({"inlineData": _inline(part, f"{where}.content[{position}]")})
        else:
            raise BadRequest(
                f"{where}.content[{position}]: content of type '{kind}' cannot be sent here.",
                param=f"{where}.content",
            )
    return parts


def _inline(part: Body, where: str) -> Body:
    kind = part["type"]
    inner = as_object(part.get(kind), f"{where}.{kind}")
    if kind == "input_audio":
        mime = _AUDIO_TYPES.get(str(inner.get("format")), "audio/wav")
        return {"mimeType": mime, "data": str(inner.get("data", ""))}
    url = str(inner.get("url", "") if kind == "image_url" else inner.get("file_data", ""))
    mime, data = data_url(url, where, "Gemini")
    return {"mimeType": mime, "data": data}


def _function_calls(calls: list[Any], names: dict[str, str], sign: bool) -> list[Body]:
    parts: list[Body] = []
    for position, item in enumerate(calls):
        call = as_object(item, f"tool_calls[{position}]")
        function = as_object(call.get("function"), f"tool_calls[{position}].function")
        name = str(function.get("name", ""))
        names[str(call.get("id", ""))] = name
        part: Body = {"functionCall": {"name": name, "args": _arguments(function)}}
        signature = dig(call, "extra_content", "google", "thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        elif sign and not parts:
            part["thoughtSignature"] = SKIP_SIGNATURE  # only the first call of a step
        parts.append(part)
    return parts


def _arguments(function: Body) -> Any:
    raw = function.get("arguments") or "{}"
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise BadRequest(
            f"The arguments of tool call '{function.get('name')}' are not valid JSON.",
            param="messages",
        ) from None
    return args if isinstance(args, dict) else {"value": args}


def _tool_result(content: Any) -> Body:
    text = content_text(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"output": text}


def _tools(tools: Any) -> list[Body]:
    declarations: list[Body] = []
    for index, item in enumerate(tools or []):
        function = function_tool(item, index, "Gemini")
        declaration: Body = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_choice(choice: Any) -> Body:
    if isinstance(choice, dict):
        return {"mode": "ANY", "allowedFunctionNames": [chosen_function(choice)]}
    modes = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
    if choice not in modes:
        raise BadRequest(f"tool_choice: unsupported value {choice!r}.", param="tool_choice")
    return {"mode": modes[choice]}


def _generation_config(body: Body) -> Body:
    config: Body = {
        target: body[source] for source, target in _GENERATION.items() if source in body
    }
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        schema = dig(response_format, "json_schema", "schema")
        if kind == "json_schema" and isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config
