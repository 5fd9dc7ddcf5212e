"""What is measured: the floor and each Tollway path, and the direct calls to the fake
upstream that give "added" latency its baseline.

Every variant is one fixed request to one proxy process; its CPU per request is that
process's CPU time over a load run divided by the requests completed.
"""

from __future__ import annotations

from dataclasses import dataclass

from client import Check, chat_ok, chat_stream_ok, messages_ok, responses_ok
from endpoint import (
    Endpoint,
    anthropic_auth,
    bearer,
    chat_body,
    messages_body,
    responses_body,
)
from stack import MASTER_KEY, MODEL, TRANSLATED_MODEL, UPSTREAM_KEY, Stack

from services import Service

FLOOR = "floor"
FLOOR_STREAM = "floor_stream"


@dataclass(frozen=True)
class Variant:
    """One request shape through one proxy."""

    key: str  # stable id in the results JSON
    label: str  # row name in the table
    server: Service | None  # the process whose CPU is counted; None: the fake upstream itself
    endpoint: Endpoint
    check: Check
    direct: str  # key of the direct call this one is compared with ("added")
    stream: bool = False

    @property
    def is_tollway(self) -> bool:
        return self.key not in (FLOOR, FLOOR_STREAM) and self.server is not None


@dataclass(frozen=True)
class Plan:
    """Everything one run measures."""

    direct: tuple[Variant, ...]  # calls straight to the fake upstream (latency baselines)
    loaded: tuple[Variant, ...]  # non-streamed: c=32 CPU and req/s, c=1 latency
    streamed: tuple[Variant, ...]  # time to first token


def plan(stack: Stack) -> Plan:
    """Mint the virtual keys and build every variant."""
    plain_key = stack.mint_key({"name": "bench-plain"})
    metered_key = stack.mint_key(
        {"name": "bench-metered", "max_budget_usd": 1_000_000, "rpm": 10**9, "tpm": 2**31 - 1}
    )
    up, floor, gw = stack.upstream.port, stack.floor.port, stack.gateway.port
    chat = chat_body(MODEL)
    stream = chat_body(MODEL, stream=True)

    def gateway(key: str, path: str, body: bytes) -> Endpoint:
        return Endpoint(gw, path, bearer(key), body)

    direct = (
        Variant(
            "direct_chat",
            "direct: chat",
            None,
            Endpoint(up, "/v1/chat/completions", bearer(UPSTREAM_KEY), chat),
            chat_ok,
            "direct_chat",
        ),
        Variant(
            "direct_messages",
            "direct: messages",
            None,
            Endpoint(up, "/v1/messages", anthropic_auth(UPSTREAM_KEY), messages_body(MODEL)),
            messages_ok,
            "direct_messages",
        ),
        Variant(
            "direct_responses",
            "direct: responses",
            None,
            Endpoint(up, "/v1/responses", bearer(UPSTREAM_KEY), responses_body(MODEL)),
            responses_ok,
            "direct_responses",
        ),
        Variant(
            "direct_stream",
            "direct: stream",
            None,
            Endpoint(up, "/v1/chat/completions", bearer(UPSTREAM_KEY), stream),
            chat_stream_ok,
            "direct_stream",
            stream=True,
        ),
    )
    chat_path, responses_path = "/v1/chat/completions", "/v1/responses"
    loaded = (
        Variant(
            FLOOR,
            "floor (bare ASGI + aiohttp)",
            stack.floor,
            Endpoint(floor, chat_path, bearer(UPSTREAM_KEY), chat),
            chat_ok,
            "direct_chat",
        ),
        Variant(
            "master",
            "Tollway, master key",
            stack.gateway,
            gateway(MASTER_KEY, chat_path, chat),
            chat_ok,
            "direct_chat",
        ),
        Variant(
            "vkey",
            "Tollway, virtual key",
            stack.gateway,
            gateway(plain_key, chat_path, chat),
            chat_ok,
            "direct_chat",
        ),
        Variant(
            "vkey_budget",
            "Tollway, virtual key + budget + rpm + tpm",
            stack.gateway,
            gateway(metered_key, chat_path, chat),
            chat_ok,
            "direct_chat",
        ),
        Variant(
            "translated",
            "Tollway, OpenAI client -> Anthropic upstream",
            stack.gateway,
            gateway(MASTER_KEY, chat_path, chat_body(TRANSLATED_MODEL)),
            chat_ok,
            "direct_messages",
        ),
        Variant(
            "responses",
            "Tollway, /v1/responses",
            stack.gateway,
            gateway(MASTER_KEY, responses_path, responses_body(MODEL)),
            responses_ok,
            "direct_responses",
        ),
    )
    streamed = (
        Variant(
            FLOOR_STREAM,
            "floor, stream",
            stack.floor,
            Endpoint(floor, chat_path, bearer(UPSTREAM_KEY), stream),
            chat_stream_ok,
            "direct_stream",
            stream=True,
        ),
        Variant(
            "master_stream",
            "Tollway, master key, stream",
            stack.gateway,
            gateway(MASTER_KEY, chat_path, stream),
            chat_stream_ok,
            "direct_stream",
            stream=True,
        ),
        Variant(
            "vkey_budget_stream",
            "Tollway, virtual key + budget + limits, stream",
            stack.gateway,
            gateway(metered_key, chat_path, stream),
            chat_stream_ok,
            "direct_stream",
            stream=True,
        ),
    )
    return Plan(direct, loaded, streamed)
