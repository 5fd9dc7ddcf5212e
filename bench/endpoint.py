"""What the load generators send: an address, headers and a fixed body.

The request bodies are realistic and small (~500 bytes of chat), the same for every
proxy, so per-request costs compare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from services import HOST

# A realistic ~500-byte chat request.
CHAT_REQUEST: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You are a concise assistant for a travel company. Answer in one short "
            "sentence, be accurate, and do not add any extra commentary or follow-up questions.",
        },
        {
            "role": "user",
            "content": "What is the capital of France? I am planning a long weekend trip there "
            "next month with my family and two kids, and would like to know which city we "
            "should fly into.",
        },
    ],
    "temperature": 0.2,
    "max_tokens": 64,
    "top_p": 1,
    "user": "bench-user-0001",
}

# The same question as an OpenAI Responses call.
RESPONSES_REQUEST: dict[str, Any] = {
    "instructions": CHAT_REQUEST["messages"][0]["content"],
    "input": CHAT_REQUEST["messages"][1]["content"],
    "temperature": 0.2,
    "max_output_tokens": 64,
    "top_p": 1,
    "user": "bench-user-0001",
    "store": False,
}

# The same question in Anthropic's Messages format (the fake's direct baseline for a
# translated call).
MESSAGES_REQUEST: dict[str, Any] = {
    "system": CHAT_REQUEST["messages"][0]["content"],
    "messages": [CHAT_REQUEST["messages"][1]],
    "temperature": 0.2,
    "max_tokens": 64,
    "top_p": 1,
}


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def chat_body(model: str, *, stream: bool = False) -> bytes:
    body = dict(CHAT_REQUEST, model=model)
    return dumps(dict(body, stream=True) if stream else body)


def responses_body(model: str) -> bytes:
    return dumps(dict(RESPONSES_REQUEST, model=model))


def messages_body(model: str) -> bytes:
    return dumps(dict(MESSAGES_REQUEST, model=model))


@dataclass(frozen=True)
class Endpoint:
    """One kind of request to one server."""

    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def with_body(self, body: bytes) -> Endpoint:
        return replace(self, body=body)

    def raw_request(self) -> bytes:
        head = [f"POST {self.path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        head += [f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(head).encode() + self.body


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"))


def anthropic_auth(key: str) -> tuple[tuple[str, str], ...]:
    return (
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("Content-Type", "application/json"),
    )
