"""``tollway keys create --for codex|claude-code|opencode|env``: what each coding agent
needs, checked the way the agent reads it (TOML, JSON, a sourced shell block), and the
minted key used for a proxied call the way that agent makes it.

The console script runs as a subprocess against one ``tollway serve`` per module, in front
of the scripted fake upstream. (The blocks were also checked by hand against Codex 0.171
with ``--strict-config``, opencode 1.18 and Claude Code 2.1 in interactive and print mode.)
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from fake_upstream import TEXT, FakeUpstream
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
)
from served import TOLLWAY, ServedGateway, clean_env

KEY_VAR = "TOLLWAY_API_KEY"
EXPORT = re.compile(rf"export {KEY_VAR}=(sk-tw-\S+)")
# The keys Codex 0.171 accepts here (it refuses unknown ones under --strict-config).
CODEX_TOP = {"model_provider", "model"}
CODEX_PROVIDER = {"name", "base_url", "env_key", "env_key_instructions", "wire_api"}


@pytest.fixture(scope="module")
def gw(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``tollway serve`` for the module: an OpenAI and an Anthropic model."""
    tmp = tmp_path_factory.mktemp("cli-agents")
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(tmp / "data"),
        "timeouts": {"connect": 2.0, "read": 5.0, "stream_idle": 5.0},
        "providers": {
            "oa": {
                "type": "openai",
                "base_url": fake_server.url + "/v1",
                "api_key": OPENAI_UPSTREAM_KEY,
            },
            "an": {
                "type": "anthropic",
                "base_url": fake_server.url,
                "api_key": ANTHROPIC_UPSTREAM_KEY,
            },
        },
        "models": [
            {"name": GPT, "provider": "oa", "model": GPT_UPSTREAM},
            {"name": CLAUDE, "provider": "an", "model": CLAUDE_UPSTREAM},
        ],
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    gateway = ServedGateway(path, tmp / "data").start()
    yield gateway
    gateway.stop()


def connect(gw: Any) -> tuple[str, ...]:
    return ("--url", gw.url, "--master-key", MASTER_KEY)


def create(gw: Any, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``tollway keys create --name ... <args>`` with the connection options after it."""
    return subprocess.run(
        [TOLLWAY, "keys", "create", "--name", "agent", *args, *connect(gw)],
        capture_output=True,
        text=True,
        env=clean_env(NO_COLOR="1", **env),
        timeout=60,
        check=False,
    )


def exported_key(done: subprocess.CompletedProcess[str]) -> str:
    """The key from the export line a config-file agent is told to run."""
    assert done.returncode == 0, done.stderr
    found = EXPORT.search(done.stderr)
    assert found, done.stderr
    key = shlex.split(found.group(1))[0]
    assert key not in done.stdout  # the config file holds the variable's name, not the key
    return key


def openai_client(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)


def test_codex_config_toml(gw: Any, fake: FakeUpstream) -> None:
    done = create(gw, "--for", "codex", "--model", GPT, "--models", f"{GPT},claude-*")
    key = exported_key(done)
    config = tomllib.loads(done.stdout)
    assert set(config) == CODEX_TOP | {"model_providers"}
    assert config["model_provider"] == "tollway"
    assert config["model"] == GPT
    provider = config["model_providers"]["tollway"]
    assert set(provider) == CODEX_PROVIDER
    assert provider["name"]
    assert provider["base_url"] == gw.url + "/v1"
    assert provider["wire_api"] == "responses"
    assert provider["env_key"] == KEY_VAR

    # What Codex then sends: the Responses API at base_url, the key from env_key.
    with openai_client(provider["base_url"], key) as client:
        answer = client.responses.create(model=config["model"], input="hi")
    assert answer.output_text == TEXT
    received = fake.last("/v1/responses")
    assert received.body["model"] == GPT_UPSTREAM
    assert received.headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"


def test_opencode_json(gw: Any, fake: FakeUpstream) -> None:
    done = create(gw, "--for", "opencode", "--model", GPT, "--models", f"{CLAUDE},{GPT},gpt-*")
    key = exported_key(done)
    config = json.loads(done.stdout)
    assert config["$schema"] == "https://opencode.ai/config.json"
    provider = config["provider"]["tollway"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": gw.url + "/v1", "apiKey": "{env:TOLLWAY_API_KEY}"}
    # The model first, then the key's other models; globs cannot be listed.
    assert list(provider["models"]) == [GPT, CLAUDE]
    assert config["model"] == config["small_model"] == f"tollway/{GPT}"

    # What @ai-sdk/openai-compatible sends: chat completions under baseURL; the gateway
    # translates for the Anthropic-served model.
    provider_name, model = config["model"].split("/", 1)
    assert provider_name == "tollway"
    with openai_client(provider["options"]["baseURL"], key) as client:
        for name in (model, CLAUDE):
            reply = client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert reply.choices[0].message.content == TEXT
    assert [r.path for r in fake.requests] == ["/v1/chat/completions", "/v1/messages"]


CLAUDE_SCRIPT = """
import json, os
import anthropic
# As Claude Code does: nothing but the environment the block left.
reply = anthropic.Anthropic(max_retries=0).messages.create(
    model=os.environ["ANTHROPIC_MODEL"], max_tokens=5,
    messages=[{"role": "user", "content": "hi"}],
)
names = [n for n in os.environ if n.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "DISABLE_"))]
print(json.dumps({"env": {n: os.environ[n] for n in names}, "text": reply.content[0].text}))
"""


def test_claude_code_block_sourced(gw: Any, fake: FakeUpstream) -> None:
    command = [TOLLWAY, "keys", "create", "--name", "cc", "--url", gw.url]
    command += ["--master-key", MASTER_KEY, "--for", "claude-code", "--model", CLAUDE]
    script = (
        # A real Anthropic key left in the sandbox must not win over the gateway's key.
        "export ANTHROPIC_API_KEY=sk-ant-real-one && "
        f'source <({shlex.join(command)}) && exec python -c "$SCRIPT"'
    )
    python_dir = str(Path(TOLLWAY).parent)
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=clean_env(SCRIPT=CLAUDE_SCRIPT, PATH=f"{python_dir}:/usr/bin:/bin"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    env = result["env"]
    key = env.pop("ANTHROPIC_AUTH_TOKEN")
    assert key.startswith("sk-tw-") and not key.startswith("sk-tw-master")
    assert env == {
        "ANTHROPIC_BASE_URL": gw.url,
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ANTHROPIC_MODEL": CLAUDE,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": CLAUDE,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": CLAUDE,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": CLAUDE,
        "CLAUDE_CODE_SUBAGENT_MODEL": CLAUDE,
    }
    assert result["text"] == TEXT
    received = fake.last("/v1/messages")
    assert received.body["model"] == CLAUDE_UPSTREAM
    assert received.headers["x-api-key"] == ANTHROPIC_UPSTREAM_KEY
    assert "sk-tw-" not in json.dumps(received.headers)


def test_json_has_every_setup_and_plain_output_has_them_all(gw: Any) -> None:
    targets = ("--for", "codex,opencode", "--for", "claude-code", "--env", "--model", GPT)
    public = {"TOLLWAY_PUBLIC_URL": "https://llm.example.com/v1/"}
    jobs = [
        ((*targets, "--json"), public),
        ((*targets, "--base-url", "http://gw.internal:8080"), {}),
        (("--for", "codex,opencode"), {}),
    ]
    with ThreadPoolExecutor(3) as pool:
        as_json, plain, bare = pool.map(lambda job: create(gw, *job[0], **job[1]), jobs)

    assert as_json.returncode == 0, as_json.stderr
    made = json.loads(as_json.stdout)
    key = made["key"]
    setup = made["setup"]
    assert list(setup) == ["codex", "opencode", "claude-code", "env"]
    # The public URL, without the /v1 it was given with, is where every agent goes.
    codex = tomllib.loads(setup["codex"]["text"])
    assert codex["model_providers"]["tollway"]["base_url"] == "https://llm.example.com/v1"
    assert setup["codex"]["env"] == {KEY_VAR: key}
    opencode = json.loads(setup["opencode"]["text"])
    assert opencode["provider"]["tollway"]["options"]["baseURL"] == "https://llm.example.com/v1"
    assert setup["opencode"]["env"] == {KEY_VAR: key}
    assert setup["claude-code"]["env"]["ANTHROPIC_AUTH_TOKEN"] == key
    assert setup["claude-code"]["env"]["ANTHROPIC_BASE_URL"] == "https://llm.example.com"
    assert setup["claude-code"]["unset"] == ["ANTHROPIC_API_KEY"]
    assert setup["env"]["env"]["OPENAI_BASE_URL"] == "https://llm.example.com/v1"
    assert {s["file"] is None for s in setup.values()} == {True, False}

    # People get every block under a header, and the export the config files need.
    assert plain.returncode == 0, plain.stderr
    headers = [line for line in plain.stdout.splitlines() if line.startswith("# ---- ")]
    assert headers == ["# ---- codex", "# ---- opencode", "# ---- claude-code", "# ---- env"]
    assert "http://gw.internal:8080/v1" in plain.stdout
    assert EXPORT.search(plain.stderr)

    # No --model: Codex keeps its own default; opencode lists nothing to pick from.
    assert bare.returncode == 0, bare.stderr
    codex_part = bare.stdout.split("# ---- opencode")[0]
    assert "model" not in tomllib.loads(codex_part)
    opencode_part = json.loads(bare.stdout.split("# ---- opencode")[1])
    assert opencode_part["provider"]["tollway"]["models"] == {}
    assert "model" not in opencode_part
