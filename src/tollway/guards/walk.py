"""Walking a parsed JSON body for its strings, with who wrote each one.

Every string in the walked fields is found, at any depth (a loop over an explicit stack:
no recursion limit to hit), except:

- the fields of ``NOT_TEXT`` and any ``..._id``/``..._ids`` field: identifiers,
  enumerations, names, URLs, binary data, signatures, encrypted content, credentials
  meant for a tool's server. Inside a tool's input object (``free``) every field is
  read, since its keys are the tool's own argument names;
- ``data`` unless its object is a text source (Anthropic ``{"type": "text", "data"}``),
  and the ``result`` of an image generation call (base64 image bytes).

Nothing is skipped for how it looks: a string in a text field is read even when it looks
like base64 or a data URI, since the model reads it as text.

The role of a string is that of the nearest object that says it: its ``role`` field
(``normalize_role``), or its ``type``: tool outputs and results (``..._output``,
``..._result``, and the ``output`` of a ``..._call`` item) are ``tool``; tool calls,
tool uses, reasoning and thinking are ``assistant``.
"""

from __future__ import annotations

from typing import Any

SYSTEM, USER, ASSISTANT, TOOL = "system", "user", "assistant", "tool"
ROLES = frozenset({SYSTEM, USER, ASSISTANT, TOOL})
# Roles spelled otherwise: OpenAI's developer messages are system prompts, the legacy
# ``function`` role (and Llama's ``ipython``) carries tool results, Gemini's ``model``
# is the assistant.
_ROLE_ALIASES = {"developer": SYSTEM, "function": TOOL, "ipython": TOOL, "model": ASSISTANT}
NOT_TEXT = frozenset(
    {
        "id", "type", "role", "name", "status", "object", "index", "signature",
        "encrypted_content", "cache_control", "media_type", "mime_type", "detail", "url",
        "image_url", "file_url", "file_data", "input_audio", "logprobs", "authorization",
        "authorization_token", "headers", "server_url",
    }
)  # fmt: skip
# Blocks whose ``input`` is a tool's arguments object (Anthropic).
_TOOL_INPUTS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
_MODEL_BLOCKS = frozenset({*_TOOL_INPUTS, "reasoning", "thinking", "redacted_thinking"})
_CALL_OUTPUTS = frozenset({"output", "outputs", "results", "error"})
_ID_SUFFIXES = ("_id", "_ids")
_MAYBE_BINARY = frozenset({"data", "result"})  # see ``_binary``
_NODES = (str, list, dict)


def normalize_role(value: Any) -> str:
    """One of ``ROLES``; a role the gateway does not know reads as ``user``."""
    if not isinstance(value, str):
        return USER
    value = value.lower()
    return value if value in ROLES else _ROLE_ALIASES.get(value, USER)


# A place in the body: its parent place (None at the top) and the key or index under it.
# A path is only spelled out when asked for (``path``), so deep bodies cost no more than
# flat ones.
Where = tuple[Any, str | int]


def path(where: Where | None) -> str:
    """The place as a path, e.g. ``messages[2].content[0].text``."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).removeprefix(".")


Spot = tuple[Any, str | int, str, Where]  # the container, the key, the role, the place


class Walk:
    """Collects the strings of the fields it is given (``spots``); ``role`` fixes the
    role of every string (an answer's are all the assistant's)."""

    def __init__(self, role: str | None = None) -> None:
        self.spots: list[Spot] = []
        self._fixed = role

    def field(self, holder: dict[str, Any], key: str, role: str, where: Where | None) -> None:
        """Every string in ``holder[key]``."""
        self._run([(holder, key, role, (where, key), False)])

    def free(self, holder: dict[str, Any], role: str, where: Where) -> None:
        """Every string in every field of ``holder``, whose keys are not field names
        (the values are walked as usual)."""
        self._run([(holder, key, role, (where, key), False) for key in reversed(list(holder))])

    def _run(self, stack: list[tuple[Any, str | int, str, Where, bool]]) -> None:
        spots, fixed = self.spots, self._fixed
        while stack:
            container, key, role, where, free = stack.pop()
            value = container[key]
            if isinstance(value, str):
                if value:
                    spots.append((container, key, fixed or role, where))
            elif isinstance(value, list):
                for i in range(len(value) - 1, -1, -1):
                    if isinstance(value[i], _NODES):
                        stack.append((value, i, role, (where, i), free))
            elif isinstance(value, dict):
                kind = value.get("type")
                if not isinstance(kind, str):
                    kind = ""
                role = _role(value, kind, role)
                is_call = kind.endswith("_call")
                for name in reversed(list(value)):
                    if not isinstance(value[name], _NODES):
                        continue
                    if not free and (name in NOT_TEXT or name.endswith(_ID_SUFFIXES)):
                        continue
                    if not free and name in _MAYBE_BINARY and _binary(name, kind):
                        continue
                    stack.append(
                        (
                            value,
                            name,
                            TOOL if is_call and name in _CALL_OUTPUTS else role,
                            (where, name),
                            free or (name == "input" and kind in _TOOL_INPUTS),
                        )
                    )


def _role(node: dict[str, Any], kind: str, role: str) -> str:
    """The role of what ``node`` (of type ``kind``) holds, ``role`` being its parent's."""
    if "role" in node:
        return normalize_role(node["role"])
    if kind.endswith(("_output", "_result")):
        return TOOL
    if kind.endswith("_call") or kind in _MODEL_BLOCKS:
        return ASSISTANT
    return role


def _binary(name: str, kind: str) -> bool:
    """Whether field ``name`` of an object of type ``kind`` is binary data: ``data``
    unless the object is a text source, an image generation call's ``result``."""
    if name == "data":
        return kind != "text"
    return kind == "image_generation_call"
