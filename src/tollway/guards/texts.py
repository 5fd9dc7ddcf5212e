"""The text slots of request and response bodies: each string a text guard should read.

A ``TextSlot`` points at one string inside the parsed JSON body (the dict or list that
holds it and the key) so a guard's redaction can replace it in place.

A request is walked whole (``walk.py``): every string a model may read is a slot,
wherever the client put it (messages of any role, content parts, tool calls and their
arguments, tool results, documents, reasoning and thinking text, system prompts,
Responses ``instructions`` and input items, tool definitions, predicted outputs ...),
except the fields a deny-list names as not text (ids, types, names, base64 data, URLs,
signatures and encrypted content, request parameters). A field the gateway does not
know is read, so a new API field cannot carry text past the guards.

An answer's slots are what the model wrote: a choice's message (content, refusal,
reasoning, tool-call arguments), a completion's text, Responses output items, Messages
content blocks (text, thinking, tool inputs).

Editing an Anthropic thinking block breaks its signature: an answer whose thinking was
redacted cannot be sent back as-is in a later turn of a tool loop (the upstream refuses
it), which is the price of not letting the text through.

Shapes follow the providers' references:
https://platform.openai.com/docs/api-reference/chat/create,
https://platform.openai.com/docs/api-reference/responses/create,
https://docs.anthropic.com/en/api/messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.dialects.endpoints import Endpoint
from tollway.guards.walk import ASSISTANT, SYSTEM, USER, Walk, Where, path

# Request parameters that are not text a model reads (settings, identifiers, the
# caller's own tags). ``user`` and ``metadata`` are for the provider's records.
_PARAMETERS = frozenset(
    {
        "model", "stream", "stream_options", "user", "metadata", "stop", "stop_sequences",
        "service_tier", "reasoning_effort", "reasoning", "thinking", "prompt_cache_key",
        "prompt_cache_retention", "safety_identifier", "include", "modalities", "voice",
        "tool_choice", "parallel_tool_calls", "truncation", "store", "background", "seed",
        "logit_bias", "logprobs", "top_logprobs", "encoding_format", "dimensions",
        "mcp_servers", "container", "conversation", "context_management", "top_k",
        "verbosity", "web_search_options", "audio",
    }
)  # fmt: skip
# Where a request's top-level fields stand: written by the operator or the client.
_SYSTEM_FIELDS = frozenset(
    {"system", "instructions", "tools", "functions", "response_format", "text"}
)
_CLIENT_ENDPOINTS = frozenset(
    {
        Endpoint.CHAT_COMPLETIONS,
        Endpoint.COMPLETIONS,
        Endpoint.EMBEDDINGS,
        Endpoint.RESPONSES,
        Endpoint.MESSAGES,
        Endpoint.COUNT_TOKENS,
    }
)


@dataclass(slots=True)
class TextSlot:
    """One string in a parsed body: ``get`` reads it, ``set`` replaces it in place."""

    container: Any  # the dict or list that holds the string
    key: str | int
    role: str  # who wrote it: system, user, assistant or tool (see walk.ROLES)
    where: Where

    @property
    def path(self) -> str:
        """Where it is, e.g. ``messages[2].content[0].text``."""
        return path(self.where)

    def get(self) -> str:
        """The string."""
        value: str = self.container[self.key]
        return value

    def set(self, text: str) -> None:
        """Replace the string."""
        self.container[self.key] = text


def request_texts(endpoint: str, payload: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a request body of ``endpoint`` (none for other endpoints)."""
    if endpoint not in _CLIENT_ENDPOINTS:
        return []
    walk = Walk()
    for key, value in payload.items():
        if key in _PARAMETERS:
            continue
        if key == "prompt" and isinstance(value, dict):
            # A stored prompt (Responses): its variables are substituted into it as text.
            variables = value.get("variables")
            if isinstance(variables, dict):
                walk.free(variables, USER, ((None, key), "variables"))
            continue
        walk.field(payload, key, SYSTEM if key in _SYSTEM_FIELDS else USER, None)
    return [TextSlot(*spot) for spot in walk.spots]


def response_texts(endpoint: str, body: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a complete (not streamed) JSON answer of ``endpoint``."""
    if endpoint == Endpoint.RESPONSES:
        return answer_texts(body, "output")
    if endpoint == Endpoint.MESSAGES:
        return answer_texts(body, "content")
    walk = Walk(role=ASSISTANT)
    if endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
        field = "message" if endpoint == Endpoint.CHAT_COMPLETIONS else "text"
        for i, choice in _items(body.get("choices")):
            if field in choice:
                walk.field(choice, field, ASSISTANT, ((None, "choices"), i))
    return [TextSlot(*spot) for spot in walk.spots]


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The dict items of a list (anything else in it is skipped)."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def answer_texts(holder: dict[str, Any], key: str) -> list[TextSlot]:
    """The text slots of ``holder[key]``, a piece of an answer (a streamed event's
    output item, content part or content block, or a text it repeats whole)."""
    walk = Walk(role=ASSISTANT)
    if key in holder:
        walk.field(holder, key, ASSISTANT, None)
    return [TextSlot(*spot) for spot in walk.spots]
