"""Model access groups: ``model_groups`` in the config, ``group:<name>`` in key and
project model scopes, enforced on the proxy (a call needs both scopes' consent) and
checked when a key or project is written."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from keys_support import (
    CLAUDE,
    CLAUDE_BIG,
    GPT,
    GPT_BIG,
    ServedGateway,
    chat,
    launch,
    management_error,
    message,
    new_key,
    new_project,
    ok,
    run_cli,
    unique,
)

from fake_upstream import TEXT, FakeUpstream
from tollway.settings import ConfigError, load_settings

GROUPS = {
    "cheap": [GPT, "claude-s*"],  # gpt-mini, claude-small
    "big": [GPT_BIG, CLAUDE_BIG],
    "everything": ["group:cheap", "group:big"],
}


@pytest.fixture(scope="module")
def ggw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """A gateway with model groups configured."""
    gateway = launch(tmp_path_factory.mktemp("groups"), upstream_server, model_groups=GROUPS)
    yield gateway
    gateway.stop()


@pytest.fixture
def api(ggw: ServedGateway) -> Iterator[httpx.Client]:
    """Its management API as the master key."""
    with ggw.admin() as client:
        yield client


def allowed(gateway: ServedGateway, key: str) -> dict[str, bool]:
    """Which of the four test models ``key`` may call, through both client dialects."""
    verdicts: dict[str, bool] = {}
    for model in (GPT, GPT_BIG):
        try:
            verdicts[model] = chat(gateway, key, model).choices[0].message.content == TEXT
        except openai.PermissionDeniedError as refused:
            assert refused.body["code"] == "model_not_allowed", refused.body  # type: ignore[index]
            verdicts[model] = False
    for model in (CLAUDE, CLAUDE_BIG):
        try:
            verdicts[model] = message(gateway, key, model).content[0].text == TEXT
        except anthropic.PermissionDeniedError:
            verdicts[model] = False
    return verdicts


def listed(gateway: ServedGateway, key: str) -> set[str]:
    """The model names ``GET /v1/models`` shows the key."""
    with gateway.openai(key) as client:
        return {model.id for model in client.models.list()}


# --------------------------------------------------------------------------- the proxy


def test_a_key_scoped_to_a_group_reaches_its_members_only(
    ggw: ServedGateway, api: httpx.Client
) -> None:
    key = new_key(api, name=unique("cheap"), models=["group:cheap"])
    assert allowed(ggw, key["key"]) == {GPT: True, GPT_BIG: False, CLAUDE: True, CLAUDE_BIG: False}
    assert listed(ggw, key["key"]) == {GPT, CLAUDE}
    # Shown as written: the group is expanded when used, from the config of the day.
    assert ok(api.get(f"/keys/{key['id']}"))["models"] == ["group:cheap"]


def test_groups_nest_and_mix_with_names_and_globs(ggw: ServedGateway, api: httpx.Client) -> None:
    everything = new_key(api, name=unique("all"), models=["group:everything"])
    assert set(allowed(ggw, everything["key"]).values()) == {True}
    mixed = new_key(api, name=unique("mixed"), models=["group:big", "gpt-m*"])
    assert allowed(ggw, mixed["key"]) == {GPT: True, GPT_BIG: True, CLAUDE: False, CLAUDE_BIG: True}


def test_a_project_scope_applies_to_every_key(ggw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(api, unique("big-only"), models=["group:big"])
    assert project["models"] == ["group:big"]
    unscoped = new_key(api, name=unique("p"), project=project["name"])
    assert allowed(ggw, unscoped["key"]) == {
        GPT: False,
        GPT_BIG: True,
        CLAUDE: False,
        CLAUDE_BIG: True,
    }
    assert listed(ggw, unscoped["key"]) == {GPT_BIG, CLAUDE_BIG}


def test_a_call_needs_both_the_key_and_the_project(ggw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(api, unique("gpt"), models=["gpt-*"])
    key = new_key(api, name=unique("both"), project=project["name"], models=["group:cheap"])
    # cheap = {gpt-mini, claude-small}; the project: gpt-* = {gpt-mini, gpt-big}.
    assert allowed(ggw, key["key"]) == {GPT: True, GPT_BIG: False, CLAUDE: False, CLAUDE_BIG: False}

    # The project's scope changes apply to its keys' next call.
    ok(api.patch(f"/projects/{project['id']}", json={"models": None}))
    assert allowed(ggw, key["key"]) == {GPT: True, GPT_BIG: False, CLAUDE: True, CLAUDE_BIG: False}
    ok(api.patch(f"/projects/{project['id']}", json={"models": ["group:everything"]}))
    ok(api.patch(f"/keys/{key['id']}", json={"models": ["group:big"]}))
    assert allowed(ggw, key["key"]) == {GPT: False, GPT_BIG: True, CLAUDE: False, CLAUDE_BIG: True}


def test_project_and_key_scopes_of_names_and_globs(ggw: ServedGateway, api: httpx.Client) -> None:
    project = new_project(api, unique("globs"), models=["gpt-*", CLAUDE_BIG])
    key = new_key(api, name=unique("globs"), project=project["name"], models=["*-mini", "claude-*"])
    # Project: gpt-mini, gpt-big, claude-big. Key: gpt-mini, claude-small, claude-big.
    assert allowed(ggw, key["key"]) == {GPT: True, GPT_BIG: False, CLAUDE: False, CLAUDE_BIG: True}
    assert listed(ggw, key["key"]) == {GPT, CLAUDE_BIG}
    unscoped = new_key(api, name=unique("globs"), project=project["name"])
    assert allowed(ggw, unscoped["key"]) == {
        GPT: True,
        GPT_BIG: True,
        CLAUDE: False,
        CLAUDE_BIG: True,
    }


# --------------------------------------------------------------------------- writes


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/keys", {"name": "k", "models": [GPT, "group:pricey"]}),
        ("POST", "/projects", {"name": "grp-unknown", "models": ["group:pricey"]}),
    ],
)
def test_an_unknown_group_is_a_400_naming_it(
    api: httpx.Client, method: str, path: str, body: dict[str, Any]
) -> None:
    error = management_error(api.request(method, path, json=body), 400)
    assert error["param"] == "models"
    assert "'pricey'" in error["message"] and "big, cheap, everything" in error["message"]


def test_an_unknown_group_is_refused_on_update_too(api: httpx.Client) -> None:
    key = new_key(api, name=unique("upd"), models=["group:cheap"])
    project = new_project(api, unique("upd"))
    for path in (f"/keys/{key['id']}", f"/projects/{project['id']}"):
        error = management_error(api.patch(path, json={"models": ["group:nope"]}), 400)
        assert error["param"] == "models" and "'nope'" in error["message"]
    assert ok(api.get(f"/keys/{key['id']}"))["models"] == ["group:cheap"]
    assert ok(api.get(f"/projects/{project['id']}"))["models"] is None


def test_scopes_are_bounded(api: httpx.Client) -> None:
    error = management_error(
        api.post("/keys", json={"name": "wide", "models": [f"m{i}" for i in range(257)]}), 422
    )
    assert error["param"] == "models"
    error = management_error(
        api.post("/projects", json={"name": "empty-entry", "models": [""]}), 422
    )
    assert error["param"] == "models.0"


# --------------------------------------------------------------------------- config


def write(tmp: Path, text: str) -> Path:
    """A config file with ``text`` (dedented)."""
    path = tmp / "groups.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_groups_load_from_yaml(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, 'model_groups:\n  cheap: [gpt-4o-mini, "claude-haiku*"]\n')
    )
    assert settings.model_groups == {"cheap": ["gpt-4o-mini", "claude-haiku*"]}


@pytest.mark.parametrize(
    ("groups", "fragment"),
    [
        ("{cheap: ['group:pricey']}", "model_groups.cheap[0]: unknown group 'pricey'"),
        ("{a: ['group:b'], b: ['group:a']}", "model_groups.a: groups name each other in a cycle"),
        ("{'a b': [x]}", "model_groups.a b: a group name is"),
        ("{a: []}", "model_groups.a: list at least one"),
        ("{a: [' x']}", "model_groups.a[0]: must be a model name or glob"),
        ("{a: x}", "model_groups.a"),
    ],
)
def test_bad_groups_stop_startup_naming_the_field(
    tmp_path: Path, groups: str, fragment: str
) -> None:
    path = write(tmp_path, f"model_groups: {groups}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert fragment in str(caught.value)
    done = run_cli("migrate", "--config", str(path))
    assert done.returncode == 2 and fragment in done.stderr, done.stderr
