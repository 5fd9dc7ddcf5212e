"""The proxied endpoints, which dialect each belongs to, and how its body is checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tollway.bounds import MAX_BEST_OF, MAX_CHOICES, MAX_OUTPUT_TOKENS
from tollway.dialects import validate as v
from tollway.errors import BadRequest
from tollway.settings import Dialect


class Endpoint(StrEnum):
    """A proxied API operation."""

    CHAT_COMPLETIONS = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MESSAGES = "messages"
    COUNT_TOKENS = "messages.count_tokens"
    # Upstream-only operations, reached through translation.
    GENERATE_CONTENT = "gemini.generate_content"
    CONVERSE = "bedrock.converse"

    @property
    def dialect(self) -> Dialect:
        """The dialect of this endpoint's API."""
        if self in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
            return Dialect.ANTHROPIC
        if self is Endpoint.GENERATE_CONTENT:
            return Dialect.GEMINI
        if self is Endpoint.CONVERSE:
            return Dialect.BEDROCK
        return Dialect.OPENAI


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the gateway needs to know about a validated request body."""

    model: str
    stream: bool
    max_output_tokens: int | None
    choices: int = 1


def _output_limit(payload: v.Payload, field: str) -> int | None:
    return v.optional_int(payload, field, minimum=1, maximum=MAX_OUTPUT_TOKENS)


def _chat(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.message_list(payload)
    stream = v.optional_bool(payload, "stream")
    v.optional_object(payload, "stream_options")
    for field in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        v.optional_number(payload, field)
    choices = v.optional_int(payload, "n", minimum=1, maximum=MAX_CHOICES) or 1
    max_tokens = _output_limit(payload, "max_tokens")
    max_completion = _output_limit(payload, "max_completion_tokens")
    v.optional_int(payload, "top_logprobs", minimum=0, maximum=20)
    v.optional_int(payload, "seed", minimum=-(2**63))
    v.optional_object(payload, "response_format")
    return RequestInfo(model, stream, max_completion or max_tokens, choices)


def _completions(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.text_or_list(payload, "prompt", required=True)
    stream = v.optional_bool(payload, "stream")
    v.optional_object(payload, "stream_options")
    v.optional_number(payload, "temperature")
    # best_of completions are generated (and billed) server-side, n of them returned.
    choices = max(
        v.optional_int(payload, "n", minimum=1, maximum=MAX_CHOICES) or 1,
        v.optional_int(payload, "best_of", minimum=1, maximum=MAX_BEST_OF) or 1,
    )
    v.optional_int(payload, "logprobs", minimum=0, maximum=20)
    return RequestInfo(model, stream, _output_limit(payload, "max_tokens"), choices)


def _embeddings(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.text_or_list(payload, "input", required=True)
    v.optional_int(payload, "dimensions", minimum=1, maximum=65_536)
    return RequestInfo(model, False, None)


def _responses(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.text_or_list(payload, "input", required=False)
    stream = v.optional_bool(payload, "stream")
    v.optional_object(payload, "stream_options")
    v.optional_number(payload, "temperature")
    return RequestInfo(model, stream, _output_limit(payload, "max_output_tokens"))


def _messages(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.message_list(payload)
    max_tokens = _output_limit(payload, "max_tokens")
    if max_tokens is None:
        raise BadRequest("Missing required field 'max_tokens'.", param="max_tokens")
    v.text_or_list(payload, "system", required=False)
    v.optional_number(payload, "temperature")
    v.optional_number(payload, "top_p")
    v.optional_int(payload, "top_k", minimum=0, maximum=MAX_OUTPUT_TOKENS)
    v.optional_object(payload, "metadata")
    v.optional_strings(payload, "stop_sequences")
    return RequestInfo(model, v.optional_bool(payload, "stream"), max_tokens)


def _count_tokens(payload: v.Payload) -> RequestInfo:
    model = v.model_name(payload)
    v.message_list(payload)
    v.text_or_list(payload, "system", required=False)
    return RequestInfo(model, False, None)


VALIDATORS: dict[Endpoint, Callable[[v.Payload], RequestInfo]] = {
    Endpoint.CHAT_COMPLETIONS: _chat,
    Endpoint.COMPLETIONS: _completions,
    Endpoint.EMBEDDINGS: _embeddings,
    Endpoint.RESPONSES: _responses,
    Endpoint.MESSAGES: _messages,
    Endpoint.COUNT_TOKENS: _count_tokens,
}

ENDPOINTS_BY_PATH: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT_COMPLETIONS,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/responses": Endpoint.RESPONSES,
    "/v1/messages": Endpoint.MESSAGES,
    "/v1/messages/count_tokens": Endpoint.COUNT_TOKENS,
}


def inspect(endpoint: Endpoint, payload: v.Payload) -> RequestInfo:
    """Check a parsed body for ``endpoint`` and return what the gateway needs from it."""
    return VALIDATORS[endpoint](payload)
