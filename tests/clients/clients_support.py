"""What the clients suite shares: the gateway's settings, a virtual key per run, what the
fake answers each run, a trap for outbound traffic, the checks every client's turn must
pass, and in-process SDK turns (agent CLIs: ``agent_runs.py``).

Every run (one client, one model, one turn) gets its own key and a nonce: the fake
answers only the calls whose body carries that nonce (``script(match=...)``), so runs can
go in parallel, and the run's upstream calls, tool round trip and spend are exactly its own.
"""

from __future__ import annotations

import contextlib
import secrets
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fake_upstream import (
    PROMPT_TOKENS,
    Behaviour,
    CallTool,
    FakeUpstream,
    Received,
    Reply,
    tool_results,
)
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
    GatewayServer,
    gateway_settings,
)
from tollway.settings import Settings

GPT = "gpt-test"
CLAUDE = "claude-test"
MODELS = {"openai": GPT, "anthropic": CLAUDE}
"""The model each type of upstream serves, by upstream type (the tests' parameter)."""
UPSTREAM_PATHS = {
    "openai": ("/v1/chat/completions", "/v1/responses"),
    "anthropic": ("/v1/messages",),
}
UPSTREAMS = tuple(MODELS)
TURNS = ("text", "tool")
PRICE = {"input_mtok": 1.5, "output_mtok": 6}
HTTP_TIMEOUT = 30.0


def clients_settings(fake: FakeUpstream, data_dir: Path) -> Settings:
    """One OpenAI-type and one Anthropic-type provider, both the fake; priced models."""
    return gateway_settings(
        fake,
        data_dir,
        timeouts={"connect": 2.0, "read": 60.0, "stream_idle": 60.0},
        retry={"attempts": 0},
        log={"level": "warning", "access": False},
        providers={
            "oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": OPENAI_UPSTREAM_KEY},
            "an": {"type": "anthropic", "base_url": fake.url, "api_key": ANTHROPIC_UPSTREAM_KEY},
        },
        models=[
            {"name": GPT, "provider": "oa", "model": "gpt-upstream-1", "price": PRICE},
            {"name": CLAUDE, "provider": "an", "model": "claude-upstream-1", "price": PRICE},
        ],
    )


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class VirtualKey:
    """A key minted through the management API, as a sandbox would get one."""

    id: str
    secret: str


def mint_key(gateway: GatewayServer, name: str, model: str) -> VirtualKey:
    """A one-hour key for ``model`` only, tagged as a clients-suite key."""
    body = {"name": name, "models": [model], "ttl": "1h", "metadata": {"suite": "clients"}}
    response = httpx.post(
        gateway.url + "/api/v1/keys",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return VirtualKey(created["id"], created["key"])


def spend_by_model(gateway: GatewayServer, key: VirtualKey) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/spend?key=...&group_by=model``, by model."""
    response = httpx.get(
        gateway.url + "/api/v1/spend",
        params={"key": key.id, "group_by": "model"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return {group["group"]: group for group in response.json()["groups"]}


# --------------------------------------------------------------------------- scripts


@dataclass(frozen=True)
class Script:
    """What the fake answers one run, and the text that proves the answer arrived."""

    turn: str
    nonce: str = field(default_factory=lambda: "tw" + secrets.token_hex(5))

    @property
    def prompt(self) -> str:
        """What the client is asked (the nonce rides along in every call of the run)."""
        if self.turn == "tool":
            return f"Run the command your tool call gives with your shell tool. ref={self.nonce}"
        return f"Say hello. ref={self.nonce}"

    @property
    def behaviour(self) -> Behaviour:
        """Text with a marker, or a shell round trip whose output only running it prints."""
        if self.turn == "tool":
            return CallTool(command=f"echo {self.nonce}-$((6*7))", expect=self.marker)
        return Reply(words=("Plain", " answer", f" {self.marker}", "."))

    @property
    def marker(self) -> str:
        """In the final text; never in the prompt or the command."""
        return f"{self.nonce}-42" if self.turn == "tool" else f"{self.nonce}-ok"

    @property
    def expected(self) -> str:
        """What the client must show: the model's last answer."""
        return f"The tool said {self.marker}." if self.turn == "tool" else self.marker

    def install(self, fake: FakeUpstream) -> None:
        """Script the fake for every call of this run."""
        fake.script(self.behaviour, match=self.nonce, persistent=True)


# --------------------------------------------------------------------------- egress


class EgressTrap:
    """An HTTP proxy that refuses everything and remembers what was asked.

    Given to a client as ``HTTP(S)_PROXY`` (with ``NO_PROXY`` for 127.0.0.1), every attempt
    to reach beyond this machine - telemetry, update checks, downloads - lands here and
    fails at once instead of reaching a package registry that happens to be reachable."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        trap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                with contextlib.suppress(OSError):
                    head = self.request.recv(4096)
                    trap.seen.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                    self.request.sendall(
                        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Proxy variables pointing here, for the upper- and lower-case readers."""
        local = "127.0.0.1,localhost,::1"
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        values = {name: self.url for name in names} | {n.lower(): self.url for n in names}
        return values | {"NO_PROXY": local, "no_proxy": local}

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- checks


def calls_of(fake: FakeUpstream, script: Script) -> list[Received]:
    """The upstream calls of one run (each carries its nonce)."""
    needle = script.nonce.encode()
    return [r for r in fake.requests if needle in r.raw]


def describe(calls: list[Received]) -> str:
    """One line per upstream call, for failure messages."""
    return "\n".join(
        f"  {r.method} {r.path} -> {r.status} {'called ' + r.called.name if r.called else ''}"
        for r in calls
    )


def check_turn(
    *,
    label: str,
    output: str,
    script: Script,
    upstream: str,
    model: str,
    key: VirtualKey,
    gateway: GatewayServer,
    fake: FakeUpstream,
    egress: list[str],
    detail: str = "",
) -> None:
    """Everything one client turn must show, from the client, the upstream and the meter.

    The client printed or returned the model's last answer; every upstream call went to
    the right type of upstream with the provider's key (never the virtual key); a tool
    turn's result came back with what only running the command prints; nothing tried to
    leave the machine; and the key's spend lists exactly these calls, priced from the
    upstream's own usage."""
    calls = calls_of(fake, script)
    context = f"{label}\n{detail}\nupstream calls:\n{describe(calls)}"
    assert script.expected in output, f"{script.expected!r} not in the answer of {context}"
    assert calls, f"no upstream call for {context}"
    paths = UPSTREAM_PATHS[upstream]
    assert all(r.path in paths for r in calls), f"calls outside {paths}: {context}"
    provider_key = OPENAI_UPSTREAM_KEY if upstream == "openai" else ANTHROPIC_UPSTREAM_KEY
    for call in calls:
        sent = call.headers.get("authorization", "") + call.headers.get("x-api-key", "")
        assert provider_key in sent, f"upstream call without the provider key: {context}"
        assert key.secret not in orjson.dumps(call.headers).decode(), "virtual key forwarded"
        assert key.secret.encode() not in call.raw, "virtual key forwarded in a body"
    if script.turn == "tool":
        assert any(c.called for c in calls), f"the fake never asked for a tool: {context}"
        answered = [
            text for c in calls for _, text in tool_results(c.path, c.body) if script.marker in text
        ]
        assert answered, f"no tool result carried {script.marker!r}: {context}"
    assert egress == [], f"{label} tried to reach beyond this machine: {egress}"
    check_spend(gateway, key, model, len(calls), context)


def check_spend(
    gateway: GatewayServer, key: VirtualKey, model: str, calls: int, context: str
) -> None:
    """The key's spend is these calls on this model, counted from the upstream's usage."""
    spend = spend_by_model(gateway, key)
    assert set(spend) == {model}, f"spend by model {spend} for {context}"
    row = spend[model]
    assert row["requests"] == calls, f"{row['requests']} spend records, {calls} calls: {context}"
    assert row["input_tokens"] == PROMPT_TOKENS * calls, f"input tokens {row}: {context}"
    assert row["output_tokens"] > 0, f"output tokens {row}: {context}"
    assert row["estimated_requests"] == 0, f"usage estimated, not counted: {row}: {context}"
    assert row["unpriced_requests"] == 0 and Decimal(str(row["cost_usd"])) > 0, row


@contextlib.contextmanager
def trapped(monkeypatch: pytest.MonkeyPatch) -> Iterator[EgressTrap]:
    """An egress trap for in-process clients: proxy variables set while the block runs
    (HTTP clients made inside it honour them; the gateway's own aiohttp client does not)."""
    trap = EgressTrap()
    with monkeypatch.context() as patch:
        for name, value in trap.env().items():
            patch.setenv(name, value)
        try:
            yield trap
        finally:
            trap.close()


# --------------------------------------------------------------------------- SDK turns


def run_shell(command: str) -> str:
    """Run a shell command and return what it printed."""
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout + done.stderr


@dataclass
class SdkTurn:
    """One in-process client turn: what the test needs to make the call, and its answer."""

    label: str
    upstream: str
    model: str
    script: Script
    key: VirtualKey
    gateway_url: str
    output: str = ""


@contextlib.contextmanager
def sdk_turn(
    client: str,
    upstream: str,
    turn: str,
    gateway: GatewayServer,
    fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SdkTurn]:
    """A key and a script for one turn; the block makes the call and sets ``output``;
    then ``check_turn`` (outbound traffic trapped meanwhile)."""
    model = MODELS[upstream]
    label = f"{client}-{upstream}-{turn}"
    script = Script(turn)
    script.install(fake)
    key = mint_key(gateway, label, model)
    current = SdkTurn(label, upstream, model, script, key, gateway.url)
    with trapped(monkeypatch) as trap:
        yield current
    check_turn(
        label=label,
        output=current.output,
        script=script,
        upstream=upstream,
        model=model,
        key=key,
        gateway=gateway,
        fake=fake,
        egress=trap.seen,
    )
