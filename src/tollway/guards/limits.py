"""Request limits: input size, message count, which tools and which endpoints.

Options (all optional; a limit not set is not checked):

    max_input_tokens   tokens of the request's texts (see below)
    max_messages       messages (chat, Messages) or input items (Responses)
    allowed_tools      names or globs (``fnmatch``, case-sensitive); a tool defined or
                       called that matches none is a finding. Built-in Responses tools are
                       named by their type (``web_search_preview``), MCP servers
                       ``mcp:<server_label>``.
    allowed_endpoints  Endpoint values, e.g. ["chat.completions", "responses"]
    bytes_per_token    the ratio of the estimate below (default 4)

Counting tokens cheaply: a byte-level BPE token is at least one UTF-8 byte, so texts of
at most ``max_input_tokens`` bytes pass without counting. Past that, with the app's
``TokenCounter`` (o200k, ~20-70 us per KB once its tables are loaded) the texts are
counted exactly; without it the tokens are estimated as bytes / ``bytes_per_token``
(o200k measured: English 4.2, Python 4.2, German 6.4, JSON 2.1, base64 1.5 bytes per
token, so the estimate errs low on dense text).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from tollway.dialects.endpoints import Endpoint
from tollway.guards import options as opt
from tollway.guards.base import Finding, RequestGuard, RequestView
from tollway.metering.tokens import TokenCounter

_OPTIONS = (
    "max_input_tokens",
    "max_messages",
    "allowed_tools",
    "allowed_endpoints",
    "bytes_per_token",
)


class LimitsGuard(RequestGuard):
    """Checks a request's size, message count, tools and endpoint against its options."""

    name: ClassVar[str] = "limits"
    wants_tokens: ClassVar[bool] = True

    def __init__(self, options: dict[str, Any], *, tokens: TokenCounter | None = None) -> None:
        super().__init__(options)
        opt.check_names(self.name, options, _OPTIONS)
        self.max_input_tokens = opt.integer(self.name, options, "max_input_tokens")
        self.max_messages = opt.integer(self.name, options, "max_messages")
        self.allowed_tools = (
            opt.strings(self.name, options, "allowed_tools")
            if options.get("allowed_tools") is not None
            else None
        )
        self.allowed_endpoints = (
            opt.choices(self.name, options, "allowed_endpoints", [e.value for e in Endpoint], ())
            if options.get("allowed_endpoints") is not None
            else None
        )
        self.bytes_per_token = opt.number(
            self.name, options, "bytes_per_token", 4.0, minimum=1.0, maximum=16.0
        )
        self._tokens = tokens

    def check(self, request: RequestView) -> list[Finding]:
        """One finding per limit the request breaks (one per tool not allowed)."""
        findings: list[Finding] = []
        if self.allowed_endpoints is not None and request.endpoint not in self.allowed_endpoints:
            findings.append(Finding(self.name, "endpoint_not_allowed"))
        limit = self.max_messages
        if limit is not None and message_count(request.endpoint, request.payload) > limit:
            findings.append(Finding(self.name, "max_messages"))
        limit = self.max_input_tokens
        if limit is not None and self.input_tokens(request.texts, limit) > limit:
            findings.append(Finding(self.name, "max_input_tokens"))
        findings.extend(Finding(self.name, "tool_not_allowed") for _ in self.refused_tools(request))
        return findings

    def refused_tools(self, request: RequestView) -> list[str]:
        """The tools (defined or called) that ``allowed_tools`` does not allow, sorted."""
        if self.allowed_tools is None:
            return []
        allowed = self.allowed_tools
        names = set(tool_names(request.endpoint, request.payload))
        return sorted(name for name in names if not any(fnmatchcase(name, g) for g in allowed))

    def input_tokens(self, texts: tuple[str, ...], limit: int) -> int:
        """The texts' tokens: exact past ``limit`` bytes with a counter, else estimated."""
        size = sum(len(text) if text.isascii() else _utf8_bytes(text) for text in texts)
        if size <= limit:
            return size  # an upper bound, and within the limit
        if self._tokens is not None:
            return sum(self._tokens.count_text(text) for text in texts)
        return math.ceil(size / self.bytes_per_token)


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def message_count(endpoint: str, payload: dict[str, Any]) -> int:
    """Messages of a chat or Messages request, input items of a Responses one, else 0."""
    if endpoint in (Endpoint.CHAT_COMPLETIONS, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        messages = payload.get("messages")
        return len(messages) if isinstance(messages, list) else 0
    if endpoint == Endpoint.RESPONSES:
        items = payload.get("input")
        if isinstance(items, list):
            return len(items)
        return 1 if isinstance(items, str) else 0
    return 0


def tool_names(endpoint: str, payload: dict[str, Any]) -> Iterator[str]:
    """Names of the tools a request defines and of those its history calls."""
    if endpoint == Endpoint.CHAT_COMPLETIONS:
        yield from _chat_tools(payload)
    elif endpoint == Endpoint.RESPONSES:
        yield from _responses_tools(payload)
    elif endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        yield from _anthropic_tools(payload)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _name(value: Any) -> Iterator[str]:
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        yield value["name"]


def _chat_tools(payload: dict[str, Any]) -> Iterator[str]:
    # https://platform.openai.com/docs/api-reference/chat/create#chat-create-tools
    for tool in _dicts(payload.get("tools")):
        yield from _name(tool.get("function") or tool.get("custom"))
    for function in _dicts(payload.get("functions")):  # the deprecated form
        yield from _name(function)
    for message in _dicts(payload.get("messages")):
        for call in _dicts(message.get("tool_calls")):
            yield from _name(call.get("function") or call.get("custom"))
        yield from _name(message.get("function_call"))


def _responses_tools(payload: dict[str, Any]) -> Iterator[str]:
    # https://platform.openai.com/docs/api-reference/responses/create#responses-create-tools
    for tool in _dicts(payload.get("tools")):
        kind = tool.get("type")
        if kind in ("function", "custom"):
            yield from _name(tool)
        elif kind == "mcp":
            yield f"mcp:{tool.get('server_label', '')}"
        elif isinstance(kind, str):
            yield kind
    for item in _dicts(payload.get("input")):
        if item.get("type") in ("function_call", "custom_tool_call"):
            yield from _name(item)


def _anthropic_tools(payload: dict[str, Any]) -> Iterator[str]:
    # https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview
    for tool in _dicts(payload.get("tools")):
        yield from _name(tool)
    for message in _dicts(payload.get("messages")):
        for block in _dicts(message.get("content")):
            if block.get("type") in ("tool_use", "server_tool_use"):
                yield from _name(block)
