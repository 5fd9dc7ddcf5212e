"""Plugins through entry points: the built-ins are registered that way, the example plugin
package in the repo (installed by the Makefile) is loaded that way, and a missing,
broken, ambiguous or wrong-typed plugin stops startup with a message naming it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from fake_upstream import FakeUpstream
from harness import GPT, MASTER_KEY, gateway_settings, running_gateway
from tollway.guards.base import TextGuard
from tollway.plugins.groups import Group, PluginError, names, scan
from tollway.plugins.registry import Plugins
from tollway.providers.openai import OpenAIProvider
from tollway.routing.strategy import LeastBusy

EXAMPLE = "tollway-banned-words"


def test_built_ins_are_entry_points() -> None:
    plugins = Plugins()
    assert {"openai", "anthropic", "azure", "gemini", "bedrock", "groq"} <= set(
        plugins.names(Group.PROVIDERS)
    )
    assert plugins.provider("openai") is OpenAIProvider
    assert len(plugins.translators()) == 5
    assert isinstance(plugins.strategies({"least-busy"})["least-busy"], LeastBusy)
    assert {"pii", "secrets", "injection", "limits"} <= set(plugins.names(Group.GUARDS))
    assert plugins.names(Group.SINKS) == ["file", "redis_stream", "webhook"]
    paths = {route.path for router in plugins.admin_routers() for route in router.routes}
    assert {"/keys", "/projects", "/switches", "/spend", "/events/sinks"} <= paths


def test_the_example_plugin_is_installed_and_found() -> None:
    dist = importlib.metadata.distribution(EXAMPLE)
    points = [p for p in dist.entry_points if p.group == Group.GUARDS.value]
    assert [p.name for p in points] == ["banned_words"]
    guard = Plugins().guard("banned_words")
    assert issubclass(guard, TextGuard) and guard.__module__ == "tollway_banned_words"


def test_the_example_guard_blocks_and_redacts_on_the_proxy(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    guards = {"banned_words": {"action": "redact", "words": ["project-falcon"]}}
    with running_gateway(gateway_settings(fake, tmp_path / "a", guards=guards)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        client.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "Status of Project-Falcon?"}]
        )
        assert fake.last().body["messages"][0]["content"] == "Status of [REDACTED:banned_word]?"
    guards = {"banned_words": {"action": "block", "words": ["project-falcon"]}}
    with running_gateway(gateway_settings(fake, tmp_path / "b", guards=guards)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": "project-falcon ships"}]
            )
        assert caught.value.code == "guard_banned_words"


def test_a_plugins_bad_options_stop_startup(fake: FakeUpstream, tmp_path: Path) -> None:
    settings = gateway_settings(fake, tmp_path, guards={"banned_words": {"action": "flag"}})
    from tollway.app import create_app

    with pytest.raises(ValueError, match="banned_words: 'words' must be a list"):
        create_app(settings)


def test_unknown_names_list_what_is_installed(fake: FakeUpstream, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown routing strategy 'fastest' \(known: "):
        gateway_settings(
            fake, tmp_path, models=[{"name": "m", "provider": "oa", "routing": "fastest"}]
        )
    with pytest.raises(ValueError, match="unknown provider type 'nosuch'"):
        gateway_settings(fake, tmp_path, providers={"x": {"type": "nosuch"}}, models=[])
    with pytest.raises(
        PluginError, match=r"No tollway.sinks plugin named 'kafka' \(installed: file, redis_"
    ):
        Plugins().sink("kafka")


@pytest.fixture
def extra_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[list[importlib.metadata.EntryPoint]]:
    """Entry points added to the installed ones (the module ``tw_test_plugin`` lives in
    ``tmp_path``)."""
    added: list[importlib.metadata.EntryPoint] = []
    real = importlib.metadata.entry_points
    (tmp_path / "tw_test_plugin.py").write_text(
        "from fastapi import APIRouter\n"
        "router = APIRouter(prefix='/open')\n"
        "@router.get('')\n"
        "async def open_door() -> dict[str, str]:\n"
        "    return {'door': 'open'}\n"
        "not_a_guard = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def patched(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *(p for p in added if p.group == group)]

    monkeypatch.setattr("tollway.plugins.groups.entry_points", patched)
    scan.cache_clear()
    yield added
    monkeypatch.undo()
    scan.cache_clear()


def _point(name: str, value: str, group: Group) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=group.value)


def test_a_broken_plugin_is_named(extra_points: list[importlib.metadata.EntryPoint]) -> None:
    extra_points.append(_point("broken", "tw_missing_module:Guard", Group.GUARDS))
    with pytest.raises(
        PluginError,
        match=r"'broken' \(tw_missing_module:Guard\) failed to load: ModuleNotFoundError",
    ):
        Plugins().guard("broken")


def test_a_wrong_object_is_refused(extra_points: list[importlib.metadata.EntryPoint]) -> None:
    extra_points.append(_point("answer", "tw_test_plugin:not_a_guard", Group.GUARDS))
    with pytest.raises(PluginError, match="is not a TextGuard or RequestGuard subclass"):
        Plugins().guard("answer")


def test_two_plugins_with_one_name_are_refused(
    extra_points: list[importlib.metadata.EntryPoint],
) -> None:
    extra_points.append(_point("pii", "tw_test_plugin:not_a_guard", Group.GUARDS))
    with pytest.raises(PluginError, match=r"Two plugins register tollway\.guards 'pii'"):
        names(Group.GUARDS)


def test_an_unguarded_admin_router_stops_startup(
    extra_points: list[importlib.metadata.EntryPoint], fake: FakeUpstream, tmp_path: Path
) -> None:
    extra_points.append(_point("open", "tw_test_plugin:router", Group.ADMIN_ROUTERS))
    from tollway.app import create_app

    with pytest.raises(RuntimeError, match="management route /api/v1/open has no admin guard"):
        create_app(gateway_settings(fake, tmp_path))
