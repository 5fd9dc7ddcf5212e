"""Which conversation a call belongs to, so that its turns stay on one deployment.

Providers cache prompt prefixes per backend and account: a later turn of a conversation
is cheaper and faster only on the deployment that served the earlier ones
(https://platform.openai.com/docs/guides/prompt-caching,
https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching). Each call gets an
affinity key, and ``Plan.choose`` maps the key to a deployment by weighted rendezvous
hashing (``strategy.rendezvous``). The key is the first of:

    1. a hint the client sends, the same on every turn of the conversation:
       ``prompt_cache_key`` (OpenAI: names the cache to use), ``conversation`` (the
       Responses API's server-side conversation, named by every turn), Anthropic
       ``metadata.user_id`` and OpenAI ``user`` / ``safety_identifier`` (the client's
       id for its end user, constant across that user's turns and conversations);
    2. the conversation's opening: the system prompt (or ``instructions``) and the
       first user message (completions: the prompt's first characters). Chat APIs are
       stateless, so every turn sends the whole history again and its opening is byte
       for byte the same; only a bounded head is read, so a megabyte prompt costs what
       a short one does;
    3. the caller's API key id, constant across all its calls. Used when the body
       carries no opening: a Responses call with ``previous_response_id`` sends only
       the new turn (the history lives upstream, on the account that stored it:
       https://platform.openai.com/docs/guides/conversation-state), and that id changes
       every turn, so neither can be hashed; the key keeps the chain on one deployment.

Embeddings and token counts get no key: no prompt cache to keep warm, and spreading a
key's bulk embedding load is worth more. Every hash here is BLAKE2, never ``hash()``
(salted per process), so all workers and hosts send a conversation the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import islice
from typing import Any

from tollway.dialects.endpoints import Endpoint
from tollway.dialects.validate import Payload

# Characters and JSON nodes read from each part of an opening (and from a hint): enough
# to tell conversations apart, and bounded whatever the body holds.
_TEXT_BUDGET = 2048
_NODE_BUDGET = 64
# Characters of a completions prompt read (any prompt long enough to be cached has more).
_PROMPT_HEAD = 256
# Messages scanned for the first user message (system and developer ones come first).
_SCAN_MESSAGES = 32
_SYSTEM_ROLES = frozenset({"system", "developer"})
# Clients move Anthropic's cache breakpoint to the newest message on every turn: a block
# of the opening has it on the first turn only, so it must not change the key.
_VOLATILE = "cache_control"

_OPENAI_HINTS = ("prompt_cache_key", "user", "safety_identifier")
_RESPONSES_HINTS = ("prompt_cache_key", "conversation", "user", "safety_identifier")


def affinity_key(endpoint: Endpoint, payload: Payload, key_id: str | None) -> str | None:
    """A stable key naming the conversation of a parsed request body (``source:digest``),
    or None when affinity cannot help."""
    found: str | None
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        found = _hint(payload, _OPENAI_HINTS) or _opening(None, payload.get("messages"))
    elif endpoint is Endpoint.MESSAGES:
        metadata = payload.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        found = _text_hint("metadata.user_id", user) or _opening(
            payload.get("system"), payload.get("messages")
        )
    elif endpoint is Endpoint.RESPONSES:
        found = _hint(payload, _RESPONSES_HINTS)
        if found is None and payload.get("previous_response_id") is None:
            found = _opening(payload.get("instructions"), payload.get("input"))
    elif endpoint is Endpoint.COMPLETIONS:
        # A continued completion sends the earlier text again, but has no message
        # boundary to cut at: only a short head is stable once the prompt outgrows it,
        # and a prompt that short is below the caching minimum (1024 tokens and up).
        prompt = payload.get("prompt")
        found = _hint(payload, _OPENAI_HINTS) or (
            _digest("opening", [prompt], _PROMPT_HEAD) if prompt else None
        )
    else:
        return None
    if found is not None:
        return found
    return _digest("key", [key_id]) if key_id else None


def key_digest(key: str) -> int:
    """An affinity key as a 64-bit number, the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def deployment_seeds(labels: Iterable[str]) -> tuple[int, ...]:
    """A 64-bit seed per deployment, from its label: a deployment keeps its seed when
    others are added, removed or reordered, so only its own conversations move."""
    seen: dict[str, int] = {}
    seeds = []
    for label in labels:
        # The same provider and model twice still needs two seeds.
        occurrence = seen[label] = seen.get(label, -1) + 1
        seeds.append(key_digest(f"{label}#{occurrence}"))
    return tuple(seeds)


def _hint(payload: Payload, fields: tuple[str, ...]) -> str | None:
    for field in fields:
        value = payload.get(field)
        if field == "conversation" and isinstance(value, dict):
            value = value.get("id")  # {"id": "conv_..."} or the bare id
        found = _text_hint(field, value)
        if found is not None:
            return found
    return None


def _text_hint(source: str, value: Any) -> str | None:
    # Fields are passed through unchecked: only a non-empty string is a hint.
    if isinstance(value, str) and value:
        return _digest(source, [value])
    return None


def _opening(system: Any, items: Any) -> str | None:
    """The digest of the system text and the first user message of ``items`` (chat
    messages or Responses input items), or None when there is neither."""
    if isinstance(items, str):  # Responses: a bare string is one user message
        return _digest("opening", [system, items])
    systems: list[Any] = [system] if system else []
    first: Any = None
    if isinstance(items, list):
        for item in islice(items, _SCAN_MESSAGES):
            if not isinstance(item, dict):
                continue
            role = item.get("role")
            if role == "user":
                first = item.get("content")
                break
            if role in _SYSTEM_ROLES:
                systems.append(item.get("content"))
    if first is None and not systems:
        return None
    # Separate budgets: a long system prompt shared by every conversation of an
    # application must not crowd out the first message that tells them apart.
    return _digest("opening", [systems, first])


def _digest(source: str, parts: list[Any], chars: int = _TEXT_BUDGET) -> str:
    pieces: list[str] = []
    for part in parts:
        pieces.append("\x1e")
        _fold(part, pieces, chars)
    data = "\x1f".join(pieces).encode("utf-8", "surrogatepass")
    return f"{source}:{hashlib.blake2b(data, digest_size=12).hexdigest()}"


def _fold(value: Any, out: list[str], chars: int) -> None:
    """Append the leading ``chars`` characters of text in a JSON value to ``out``."""
    nodes = _NODE_BUDGET
    stack = [value]
    while stack and chars > 0 and nodes > 0:
        item = stack.pop()
        nodes -= 1
        if isinstance(item, str):
            piece = item[:chars]
            chars -= len(piece)
            out.append(piece)
        elif isinstance(item, dict):
            values = [v for k, v in islice(item.items(), nodes) if k != _VOLATILE]
            stack.extend(reversed(values))
        elif isinstance(item, list):
            stack.extend(reversed(item[:nodes]))
        elif item is not None:
            out.append(str(item))  # numbers and booleans (token-id prompts)
