"""``tollway serve`` as a user runs it: the console script in a subprocess on a real port."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from fake_upstream import TEXT, FakeUpstream
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, OPENAI_UPSTREAM_KEY
from served import clean_env, free_port
from tollway.auth.master import ensure_master_key
from tollway.cli.main import app as cli_app
from tollway.settings import load_settings

TOLLWAY = str(Path(sys.executable).parent / "tollway")
PROMPT = "a very particular prompt 7c1f"


def write_config(tmp_path: Path, fake: FakeUpstream, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(tmp_path / "data"),
        "timeouts": {"connect": 1, "read": 5, "stream_idle": 2},
        "providers": {
            "oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": OPENAI_UPSTREAM_KEY}
        },
        "models": [{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM}],
    }
    config.update(changes)
    config = {k: v for k, v in config.items() if v is not None}
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOLLWAY, *args],
        cwd=cwd,
        env=clean_env(NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )


class Served:
    """A ``tollway serve`` subprocess; output goes to files so it can never block."""

    def __init__(self, tmp_path: Path, config: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / f"stdout-{self.port}.txt"
        self.stderr_path = tmp_path / f"stderr-{self.port}.txt"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [TOLLWAY, "serve", "--config", str(config), "--port", str(self.port), *extra],
                cwd=tmp_path,
                env=clean_env(NO_COLOR="1"),
                stdout=out,
                stderr=err,
            )
        self._wait_live()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def _wait_live(self) -> None:
        deadline = time.monotonic() + 120  # a loaded host; returns once up
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tollway serve exited early:\n{self.stderr}")
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"tollway serve did not come up:\n{self.stderr}")

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, and the exit code once it has stopped."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def access_lines(self) -> list[dict[str, Any]]:
        """The access log: JSON lines on stderr from the ``tollway.access`` logger."""
        lines = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "tollway.access":
                    lines.append(entry)
        return lines


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start ``tollway serve`` processes that are killed at the end of the test."""
    started: list[Served] = []

    def start(config: Path, *extra: str) -> Served:
        served = Served(tmp_path, config, *extra)
        started.append(served)
        return served

    yield start
    for served in started:
        served.kill()


def chat(url: str, key: str = MASTER_KEY, model: str = GPT) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": PROMPT}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


# --------------------------------------------------------------------------- bad config


def test_serve_with_bad_config_exits_with_one_line(tmp_path: Path, fake: FakeUpstream) -> None:
    config = write_config(tmp_path, fake, providers={"oa": {"type": "gemini-ish"}})
    result = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "providers.oa.type" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "absent.yaml"),
        ("providers: {oa: {type: openai}}\nmodels: [{name: m, provider: nope}]\n", "models[0]"),
        ("timeouts: {connect: -1}\n", "timeouts.connect"),
        ("provders: {}\n", "provders"),
        ("- a list\n", "mapping"),
        ("providers:\n  oa: {type: openai\nmodels: []\n", "bad.yaml"),
    ],
    ids=["missing-file", "unknown-provider", "negative-timeout", "typo", "list", "yaml-syntax"],
)
def test_serve_config_errors_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None, needle: str
) -> None:
    # The same command in-process (no interpreter start-up): more cases, same contract.
    monkeypatch.chdir(tmp_path)
    config = tmp_path / ("absent.yaml" if text is None else "bad.yaml")
    if text is not None:
        config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(config)])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert needle in lines[0]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- serving


def test_first_start_serves_logs_and_stops_on_sigterm(
    tmp_path: Path, fake: FakeUpstream, serve: Any
) -> None:
    # No master key configured: the first start generates one, prints it once, keeps it.
    served = serve(write_config(tmp_path, fake, master_key=None))
    key_file = tmp_path / "data" / "master_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text(encoding="utf-8").strip()
    assert served.stdout.count(key) == 1
    assert key not in served.stderr

    live = httpx.get(served.url + "/health/live", timeout=5)
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    assert httpx.get(served.url + "/health/ready", timeout=5).status_code == 200

    response = chat(served.url, key=key)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == TEXT
    assert fake.last().body["model"] == GPT_UPSTREAM
    missing = chat(served.url, key=key, model="no-such-model")
    assert missing.status_code == 404
    assert chat(served.url, key=MASTER_KEY).status_code == 401

    assert served.terminate() == 0

    # One JSON line per request (health checks, the harness's readiness polls included, and
    # the three proxied calls), with what operators need and nothing secret.
    every = served.access_lines()
    health = [line for line in every if str(line.get("path")).startswith("/health/")]
    assert {line["path"] for line in health} == {"/health/live", "/health/ready"}, every
    lines = {line["request_id"]: line for line in every if line not in health}
    assert len(lines) == 3, served.stderr
    ok = lines[response.headers["x-request-id"]]
    assert ok["model"] == GPT
    assert ok["provider"] == "oa"
    assert ok["upstream_model"] == GPT_UPSTREAM
    assert ok["status"] == 200
    assert isinstance(ok["latency_ms"], int | float)
    assert ok["latency_ms"] >= 0
    failed = lines[missing.headers["x-request-id"]]
    assert failed["status"] == 404
    assert failed["model"] == "no-such-model"
    output = served.stderr + served.stdout.replace(key, "")
    for secret in (key, MASTER_KEY, OPENAI_UPSTREAM_KEY, PROMPT, TEXT, "Traceback"):
        assert secret not in output


def test_next_start_reuses_the_key_and_serves_with_two_workers(
    tmp_path: Path, fake: FakeUpstream, serve: Any
) -> None:
    config = write_config(tmp_path, fake, master_key=None)
    # The key a previous start generated (the same function the CLI calls).
    key, generated = ensure_master_key(load_settings(config))
    assert generated

    served = serve(config, "--workers", "2")
    assert key not in served.stdout + served.stderr
    assert "Generated" not in served.stdout
    assert (tmp_path / "data" / "master_key").read_text(encoding="utf-8").strip() == key
    statuses = [chat(served.url, key=key).status_code for _ in range(8)]
    assert statuses == [200] * 8
    assert httpx.get(served.url + "/health/ready", timeout=5).status_code == 200
    assert len(fake.requests) == 8
    assert served.terminate(timeout=30) == 0
    assert "Traceback" not in served.stderr
