"""Helpers for the virtual key, project, admin and audit tests (fixtures: conftest.py).

The gateway under test is the real thing: ``tollway serve --config cfg.yaml`` in a
subprocess on a real port, with SQLite in a temporary data dir (Postgres in its own
module), in front of the scripted fake upstream from ``tests/fake_upstream.py``. Its
stdout and stderr go to a file, so tests can check what it logged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import yaml

from fake_upstream import FakeUpstream
from served import TOLLWAY, clean_env
from served import ServedGateway as Served

BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")

MASTER_KEY = "sk-tw-master-keytests-5e1f0c9a7b3d2864"
GLOBAL_OPENAI_KEY = "sk-global-oa-KEYTESTS-1f2e3d4c5b6a"
GLOBAL_ANTHROPIC_KEY = "sk-ant-global-KEYTESTS-9a8b7c6d5e4f"

# Client-facing model names, and the upstream ids they map to.
GPT = "gpt-mini"
GPT_UPSTREAM = "gpt-mini-upstream"
GPT_BIG = "gpt-big"
CLAUDE = "claude-small"
CLAUDE_UPSTREAM = "claude-small-upstream"
CLAUDE_BIG = "claude-big"

MESSAGES = [{"role": "user", "content": "Say hello."}]
CLIENT_TIMEOUT = 10.0
OPENAI_ERROR_KEYS = {"message", "type", "code", "param"}


def write_config(path: Path, data_dir: Path, upstream: FakeUpstream, **overrides: Any) -> Path:
    """A gateway config file in front of ``upstream``."""
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(data_dir),
        "log": {"level": "debug", "access": True},
        "timeouts": {"connect": 2.0, "read": 5.0, "stream_idle": 5.0},
        "providers": {
            "oa": {
                "type": "openai",
                "base_url": upstream.url + "/v1",
                "api_key": GLOBAL_OPENAI_KEY,
            },
            "an": {"type": "anthropic", "base_url": upstream.url, "api_key": GLOBAL_ANTHROPIC_KEY},
        },
        "models": [
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": GPT_BIG, "provider": "oa"},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
            {"name": CLAUDE_BIG, "provider": "an"},
        ],
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class ServedGateway(Served):
    """A served gateway with clients for the key tests' master key and SDKs."""

    def admin(self, key: str = MASTER_KEY) -> httpx.Client:
        """A management API client authenticated with ``key``."""
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"authorization": f"Bearer {key}"},
            timeout=CLIENT_TIMEOUT,
        )

    def openai(self, key: str) -> openai.OpenAI:
        """The official OpenAI SDK pointed at the gateway."""
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT
        )

    def anthropic(self, key: str) -> anthropic.Anthropic:
        """The official Anthropic SDK pointed at the gateway."""
        return anthropic.Anthropic(
            base_url=self.url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT
        )


def launch(tmp: Path, upstream: FakeUpstream, workers: int = 1, **overrides: Any) -> ServedGateway:
    """Write a config under ``tmp`` and start a gateway with it."""
    tmp.mkdir(parents=True, exist_ok=True)
    data_dir = tmp / "data"
    config = write_config(tmp / "cfg.yaml", data_dir, upstream, **overrides)
    return ServedGateway(config, data_dir, workers=workers).start()


# --------------------------------------------------------------------------- helpers


def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a successful create (201)."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: httpx.Response) -> Any:
    """The body of a 200 answer."""
    assert response.status_code == 200, response.text
    return response.json()


# Fields computed at read time (spend so far) that differ between views of one row.
VOLATILE = frozenset({"spend_usd", "key"})


def stable(record: dict[str, Any]) -> dict[str, Any]:
    """A key or project without its read-time fields, for comparing views."""
    return {name: value for name, value in record.items() if name not in VOLATILE}


def new_key(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """Mint a virtual key; returns the creation answer (with the secret in ``key``)."""
    body.setdefault("name", "test key")
    return created(api.post("/keys", json=body))


def new_project(api: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    """Create a project."""
    return created(api.post("/projects", json={"name": name, **body}))


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{os.urandom(4).hex()}"


def management_error(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """Check the management API's error shape and return the ``error`` object."""
    wanted = status if isinstance(status, tuple) else (status,)
    assert response.status_code in wanted, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == OPENAI_ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert "Traceback" not in response.text
    return error


def chat(gateway: ServedGateway, key: str, model: str = GPT) -> Any:
    """One chat completion through the OpenAI SDK."""
    with gateway.openai(key) as client:
        return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=20)


def message(gateway: ServedGateway, key: str, model: str = CLAUDE) -> Any:
    """One message through the Anthropic SDK."""
    with gateway.anthropic(key) as client:
        return client.messages.create(model=model, messages=MESSAGES, max_tokens=20)


def raw_chat(url: str, headers: dict[str, str], model: str = GPT) -> httpx.Response:
    """A chat completion over a fresh connection, with exactly ``headers``."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        return client.post(
            url + "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": MESSAGES, "max_tokens": 5},
        )


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    """Run the ``tollway`` console script."""
    return subprocess.run(
        [TOLLWAY, *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        check=False,
    )


def run_clis(*commands: tuple[str, ...], env: dict[str, str] | None = None) -> list[Any]:
    """Run independent CLI commands side by side (each one is a fresh interpreter)."""
    return run_each([(args, env) for args in commands])


def run_each(jobs: list[tuple[tuple[str, ...], dict[str, str] | None]]) -> list[Any]:
    """Run independent CLI commands side by side, each with its own environment."""
    with ThreadPoolExecutor(max(1, min(len(jobs), 8))) as pool:
        return list(pool.map(lambda job: run_cli(*job[0], env=job[1]), jobs))
