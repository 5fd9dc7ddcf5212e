"""What each coding agent needs to go through the gateway with a new key (``keys create
--for``): a config file or a shell block, and the variables holding the key.

Config files name the variable that holds the key rather than the key itself, so they
can be written once while keys come and go.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

KEY_VAR = "TOLLWAY_API_KEY"  # what Codex and opencode read the key from
PROVIDER = "tollway"


@dataclass(frozen=True)
class NewKey:
    """A key just minted, where agents reach the gateway, and the model they should use."""

    secret: str
    base: str  # the gateway's root, without /v1
    model: str | None = None
    scope: list[str] = field(default_factory=list)  # the key's models and globs; [] = all


@dataclass(frozen=True)
class Setup:
    """One agent's setup: ``text`` is printed as is; ``env`` is what its shell exports."""

    text: str
    env: dict[str, str]
    file: str | None = None  # where ``text`` goes; None: a block to source
    unset: list[str] = field(default_factory=list)
    hint: str | None = None  # for people: what is still missing

    def as_json(self) -> dict[str, Any]:
        """The fields of ``keys create --json``."""
        return {"file": self.file, "text": self.text, "env": self.env, "unset": self.unset}


def _exports(env: dict[str, str]) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def generic(new: NewKey) -> Setup:
    """Exports that point the OpenAI and Anthropic SDKs (and most tools) at the gateway."""
    key, base = new.secret, new.base
    env = {
        "OPENAI_BASE_URL": f"{base}/v1",
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": key,
        # Claude Code sends ANTHROPIC_AUTH_TOKEN as a bearer token; both are accepted.
        "ANTHROPIC_AUTH_TOKEN": key,
    }
    return Setup("\n".join(_exports(env)), env)


# Every model alias Claude Code resolves (its background calls use the haiku one), so
# that a key scoped to one model is never asked for another.
CLAUDE_MODEL_VARS = [
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_SUBAGENT_MODEL",
]


def claude_code(new: NewKey) -> Setup:
    """Claude Code's environment: the key as a bearer token, nothing sent elsewhere."""
    env = {"ANTHROPIC_BASE_URL": new.base, "ANTHROPIC_AUTH_TOKEN": new.secret}
    quiet = {"DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    models = dict.fromkeys(CLAUDE_MODEL_VARS, new.model) if new.model else {}
    lines = [
        "# Claude Code: source in the shell that runs `claude`. ANTHROPIC_AUTH_TOKEN is sent",
        "# as a bearer token with no login prompt; an ANTHROPIC_API_KEY would make it ask.",
        *_exports(env),
        "unset ANTHROPIC_API_KEY",
        "# Telemetry, error reports and update checks would bypass the gateway.",
        *_exports(quiet),
    ]
    if models:
        lines += ["# Every model alias, to the model this key is for.", *_exports(models)]
    return Setup("\n".join(lines), env | quiet | models, unset=["ANTHROPIC_API_KEY"])


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX for the rest).
    return json.dumps(value)


def codex(new: NewKey) -> Setup:
    """Codex's ``config.toml``: a Responses-API provider reading the key from KEY_VAR."""
    top = [f"model_provider = {_toml(PROVIDER)}"]
    if new.model:
        top.append(f"model = {_toml(new.model)}")
    lines = [
        "# Codex: $CODEX_HOME/config.toml (default ~/.codex/config.toml); top-level keys go",
        f"# before any [table]. Codex reads the key from ${KEY_VAR}.",
        *top,
        "",
        f"[model_providers.{PROVIDER}]",
        'name = "Tollway"',
        f"base_url = {_toml(new.base + '/v1')}",
        f"env_key = {_toml(KEY_VAR)}",
        f"env_key_instructions = {_toml(f'export {KEY_VAR}=<a key from: tollway keys create>')}",
        'wire_api = "responses"',
    ]
    hint = None if new.model else "codex: no --model: Codex will ask for its own default model"
    return Setup("\n".join(lines), {KEY_VAR: new.secret}, file="~/.codex/config.toml", hint=hint)


def opencode(new: NewKey) -> Setup:
    """opencode's ``opencode.json``: one OpenAI-compatible provider for every model."""
    # One provider serves Claude models too: the gateway translates to each one's API.
    # opencode offers only the models a provider lists.
    # Globs and groups (``group:cheap``) name no model a client could pick.
    concrete = [
        name
        for name in new.scope
        if not any(c in name for c in "*?[") and not name.startswith("group:")
    ]
    names = list(dict.fromkeys([*([new.model] if new.model else []), *concrete]))
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Tollway",
                "options": {"baseURL": f"{new.base}/v1", "apiKey": f"{{env:{KEY_VAR}}}"},
                "models": {name: {"name": name} for name in names},
            }
        },
    }
    if new.model:
        # Its title and summary calls use small_model: keep them on this key's model.
        config["model"] = config["small_model"] = f"{PROVIDER}/{new.model}"
    hint = None if names else "opencode: no model listed; pass --model (or --models without globs)"
    text = json.dumps(config, indent=2)
    return Setup(text, {KEY_VAR: new.secret}, file="./opencode.json", hint=hint)


Builder = Callable[[NewKey], Setup]
TARGETS: dict[str, Builder] = {
    "codex": codex,
    "claude-code": claude_code,
    "opencode": opencode,
    "env": generic,
}


def parse_targets(values: Iterable[str]) -> list[str]:
    """``--for`` values (repeated or comma-separated) in order, without repeats."""
    parts = [part.strip().lower() for value in values for part in value.split(",")]
    targets = list(dict.fromkeys(part for part in parts if part))
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    return targets


def public_base(url: str) -> str:
    """The gateway's root as clients see it: no trailing slash, no ``/v1``."""
    base = url.rstrip("/")
    # Each agent adds /v1 where its API needs it; a base given with it would double it.
    return base.removesuffix("/v1")
