"""The exact-match cache key of a request: BLAKE2b over its canonical form.

Canonical form: the request body with its keys sorted at every depth (orjson
``OPT_SORT_KEYS``), minus the fields below, behind a header naming the key format, the
scope (tenant), the endpoint and the request headers that change the answer. Everything
not listed as excluded is part of the key: a parameter the gateway does not know yet
makes a different key (a miss), never a wrong answer.

Excluded, because they do not change the answer:

- ``stream``: an entry replays both whole and streamed (see ``entry.py``).
- ``stream_options``: framing only (``include_usage`` adds the usage chunk on replay).
- ``user``, ``safety_identifier``, ``metadata`` (Anthropic: ``metadata.user_id``): who
  asked, for abuse monitoring and the caller's bookkeeping.
- ``prompt_cache_key``, ``prompt_cache_retention``: routing and retention of the
  provider's prompt cache.
- ``service_tier``: latency and price, not content.
- ``store`` (chat completions only): keeps a copy for evals and distillation.

Kept on purpose: the Responses ``store`` flag (an answer stored upstream can be
continued with ``previous_response_id``; one from a ``store: false`` call cannot, so the
two must not share an entry; absent means the API's default, true). Client request ids
travel in headers, and no header is part of the key except ``anthropic-version`` and
``anthropic-beta``, which the gateway forwards and which change what the model does.

Not cached (None): sampled calls, whose every answer is a new draw (temperature above 0
or unset, where every API's default is 1; ``top_p`` below 1; more than one choice),
unless ``allow_sampled``; Responses calls whose answer depends on state that changes
(a ``conversation``, a ``prompt`` template without a pinned ``version``) or that do not
answer now (``background``); endpoints other than the five answered by a model.

Object key order is not part of the key, at any depth: two JSON schemas listing the same
properties in another order share an entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.dialects.endpoints import Endpoint

# Bump when the canonical form changes: old entries then simply stop matching.
KEY_FORMAT = 1
_DIGEST_BYTES = 32

_FRAMING = frozenset({"stream", "stream_options"})
_WHO = frozenset({"user", "safety_identifier", "metadata"})
_PROVIDER_CACHE = frozenset({"prompt_cache_key", "prompt_cache_retention"})
EXCLUDED: dict[Endpoint, frozenset[str]] = {
    Endpoint.CHAT_COMPLETIONS: _FRAMING | _WHO | _PROVIDER_CACHE | {"service_tier", "store"},
    Endpoint.COMPLETIONS: _FRAMING | {"user"},
    Endpoint.EMBEDDINGS: frozenset({"user"}),
    Endpoint.RESPONSES: _FRAMING | _WHO | _PROVIDER_CACHE | {"service_tier", "store"},
    Endpoint.MESSAGES: frozenset({"stream", "metadata", "service_tier"}),
}
# Request headers the gateway forwards upstream that change the answer.
ANSWER_HEADERS = ("anthropic-version", "anthropic-beta")


def cache_key(
    scope: str,
    endpoint: Endpoint | str,
    payload: Mapping[str, Any],
    *,
    allow_sampled: bool = False,
    headers: Mapping[str, str] | None = None,
) -> str | None:
    """The hex BLAKE2b key of this request in ``scope``, or None when it must not be cached."""
    if not scope:
        raise ValueError("a cache scope is required (the project id, or a shared scope)")
    try:
        endpoint = Endpoint(endpoint)
    except ValueError:
        return None
    excluded = EXCLUDED.get(endpoint)
    if excluded is None or _uncacheable(endpoint, payload):
        return None
    if endpoint is not Endpoint.EMBEDDINGS and not allow_sampled and sampled(payload):
        return None
    canonical = {name: value for name, value in payload.items() if name not in excluded}
    if endpoint is Endpoint.RESPONSES:
        canonical["store"] = payload.get("store") is not False
    try:
        body = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested too deeply: not worth a key
        return None
    head = orjson.dumps([KEY_FORMAT, scope, endpoint.value, _answer_headers(headers)])
    digest = hashlib.blake2b(head, digest_size=_DIGEST_BYTES)
    digest.update(b"\n")  # compact JSON has no raw newline: the header ends here
    digest.update(body)
    return digest.hexdigest()


def sampled(payload: Mapping[str, Any]) -> bool:
    """Is each answer to this request a new random draw?"""
    temperature = payload.get("temperature")
    if temperature is None:
        return True  # every API's default temperature is 1
    if not _number(temperature) or temperature > 0:
        return True
    top_p = payload.get("top_p")
    if top_p is not None and (not _number(top_p) or top_p < 1):
        return True
    for field in ("n", "best_of"):
        count = payload.get(field)
        if count is not None and (not _number(count) or count > 1):
            return True
    return False


def _uncacheable(endpoint: Endpoint, payload: Mapping[str, Any]) -> bool:
    """Does the answer depend on server-side state that changes, or come later?"""
    if endpoint is not Endpoint.RESPONSES:
        return False
    if payload.get("conversation") is not None or payload.get("background") is True:
        return True
    prompt = payload.get("prompt")
    return isinstance(prompt, Mapping) and prompt.get("version") is None


def _answer_headers(headers: Mapping[str, str] | None) -> list[str]:
    """The answer-changing headers, normalized (a beta list is a set)."""
    if not headers:
        return ["", ""]
    version = headers.get("anthropic-version", "").strip()
    betas = {beta.strip() for beta in headers.get("anthropic-beta", "").split(",")}
    return [version, ",".join(sorted(betas - {""}))]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
