"""Helpers for the metrics tests: a served gateway in front of the fake upstream, calls
over fresh connections (so that several workers share them), and scrapes parsed with
prometheus-client's own parser."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fake_upstream import FakeUpstream
from served import ServedGateway

MASTER_KEY = "sk-tw-master-metrics-3c8e1a5f7b9d2046"
OPENAI_KEY = "sk-oa-metrics-UPSTREAM-5e7a9c1b3d"
ANTHROPIC_KEY = "sk-ant-metrics-UPSTREAM-2b4d6f8a0c"
CLIENT_TIMEOUT = 10.0
MESSAGES = [{"role": "user", "content": "Say hello."}]
OPENAI_ERROR_KEYS = {"message", "type", "code", "param"}

# Client-facing models; each is priced, so every call has a known cost.
GPT, GPT_UPSTREAM = "gpt-m", "gpt-m-up"
CLAUDE, CLAUDE_UPSTREAM = "claude-m", "claude-m-up"
SOLO, SOLO_UPSTREAM = "gpt-solo", "gpt-solo-up"  # no fallback: its failure reaches the client
PRIMARY, PRIMARY_UPSTREAM = "gpt-primary", "gpt-primary-up"  # falls back to GPT
GPT_PRICE = {"input_mtok": "1", "output_mtok": "2"}
CLAUDE_PRICE = {"input_mtok": "3", "output_mtok": "5"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config(data_dir: Path, upstream: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    """A gateway config in front of ``upstream``: no retries (a failure moves on to the
    fallback at once), breakers that open on the first failure and stay open."""
    values: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(data_dir),
        "log": {"level": "info", "access": False},
        "timeouts": {"connect": 2.0, "read": 5.0, "stream_idle": 5.0},
        "retry": {"attempts": 0},
        "circuit": {"failures": 1, "cooldown": 600},
        "metrics": {"cache_seconds": 0},
        "providers": {
            "oa": {"type": "openai", "base_url": upstream.url + "/v1", "api_key": OPENAI_KEY},
            "an": {"type": "anthropic", "base_url": upstream.url, "api_key": ANTHROPIC_KEY},
        },
        "models": [
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM, "price": GPT_PRICE},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM, "price": CLAUDE_PRICE},
            {"name": SOLO, "provider": "oa", "model": SOLO_UPSTREAM, "price": GPT_PRICE},
            {
                "name": PRIMARY,
                "provider": "oa",
                "model": PRIMARY_UPSTREAM,
                "price": GPT_PRICE,
                "fallbacks": [GPT],
            },
        ],
    }
    values.update(overrides)
    return values


def launch(tmp: Path, upstream: FakeUpstream, workers: int, **overrides: Any) -> ServedGateway:
    """``tollway serve --workers N`` with ``config(...)``, started."""
    tmp.mkdir(parents=True, exist_ok=True)
    data_dir = tmp / "data"
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(config(data_dir, upstream, **overrides)), encoding="utf-8")
    return ServedGateway(path, data_dir, workers=workers).start()


def bearer(key: str) -> dict[str, str]:
    """``Authorization: Bearer <key>``."""
    return {"authorization": f"Bearer {key}"}


def management(url: str) -> httpx.Client:
    """The management API as the master key."""
    return httpx.Client(base_url=url + "/api/v1", headers=bearer(MASTER_KEY), timeout=10.0)


def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a 201."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def post(url: str, path: str, key: str, body: dict[str, Any]) -> httpx.Response:
    """One proxied call over a connection of its own (any worker may take it)."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        return client.post(url + path, headers=bearer(key), json=body)


def chat(url: str, key: str, model: str = GPT, word: str = "", stream: bool = False) -> Any:
    """A chat completion (``word`` lands in the prompt, for the fake's ``match``)."""
    messages = [{"role": "user", "content": f"Say hello. {word}".strip()}]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 20}
    if stream:
        body["stream"] = True
    return post(url, "/v1/chat/completions", key, body)


def message(url: str, key: str, model: str = CLAUDE) -> httpx.Response:
    """An Anthropic Messages call."""
    return post(url, "/v1/messages", key, {"model": model, "messages": MESSAGES, "max_tokens": 20})


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    """``GET /metrics`` parsed: (sample name, labels) -> value."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        response = client.get(url + "/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample with exactly these labels (0 when there is none)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` that has these labels (and maybe others)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until it is true (values reach a scrape within a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def management_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The management API's error shape, and its ``error`` object."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == OPENAI_ERROR_KEYS, error
    assert error["message"] and "Traceback" not in response.text
    return error
