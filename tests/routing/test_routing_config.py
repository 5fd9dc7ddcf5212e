"""Routing configuration that cannot work stops startup with a message naming the
field: deployments, providers, fallbacks, strategies, weights, limits, retry and
circuit settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from routing_support import StartGateway, Upstreams, deployment, model

from tollway.settings import ConfigError, Settings, load_settings

PROVIDERS = {
    "oa": {
        "type": "openai",
        "api_key": "sk-config-SECRET-1234567890",
        "base_url": "http://127.0.0.1:9/v1",
    },
    "an": {"type": "anthropic", "api_key": "sk-ant-config-SECRET-0987654321"},
}


def _load(tmp_path: Path, models: list[dict[str, Any]], **extra: Any) -> Settings:
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump({"providers": PROVIDERS, "models": models, **extra}))
    return load_settings(path)


def _refused(tmp_path: Path, models: list[dict[str, Any]], **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, models, **extra)
    message = str(caught.value)
    assert message.startswith("invalid configuration")
    assert "Traceback" not in message
    assert "SECRET" not in message
    return message


def test_a_valid_routing_config_loads(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        [
            {
                "name": "gpt",
                "routing": "least-busy",
                "deployments": [
                    {"provider": "oa", "model": "gpt-a", "weight": 3, "rpm": 60},
                    {"provider": "an", "model": "claude-b", "weight": 0.5, "max_parallel": 2},
                ],
                "fallbacks": ["claude"],
                "context_fallbacks": ["claude"],
            },
            {"name": "claude", "provider": "an", "model": "claude-x"},
        ],
        retry={"attempts": 3, "backoff_base": 0.1, "backoff_max": 2, "deadline": 30},
        circuit={"failures": 3, "cooldown": 1},
    )
    gpt = settings.models[0]
    assert [d.weight for d in gpt.all_deployments()] == [3, 0.5]
    assert settings.models[1].all_deployments()[0].model == "claude-x"
    assert (settings.retry.attempts, settings.circuit.failures) == (3, 3)


CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], tuple[str, ...]]] = {
    "deployment-unknown-provider": (
        [{"name": "m", "deployments": [{"provider": "oa"}, {"provider": "nope"}]}],
        {},
        ("models[0].deployments", "nope"),
    ),
    "unknown-provider": (
        [{"name": "m", "provider": "nope"}],
        {},
        ("models[0].provider", "nope"),
    ),
    "provider-and-deployments": (
        [{"name": "m", "provider": "oa", "deployments": [{"provider": "an"}]}],
        {},
        ("models.0", "provider", "deployments"),
    ),
    "neither-provider-nor-deployments": (
        [{"name": "m"}],
        {},
        ("models.0", "provider", "deployments"),
    ),
    "empty-deployments": (
        [{"name": "m", "deployments": []}],
        {},
        ("models.0", "deployments"),
    ),
    "unknown-fallback": (
        [{"name": "m", "provider": "oa"}, {"name": "n", "provider": "oa", "fallbacks": ["ghost"]}],
        {},
        ("models[1].fallbacks", "ghost"),
    ),
    "unknown-context-fallback": (
        [{"name": "m", "provider": "oa", "context_fallbacks": ["bigger"]}],
        {},
        ("models[0].context_fallbacks", "bigger"),
    ),
    "bad-strategy": (
        [{"name": "m", "provider": "oa", "routing": "round-robin"}],
        {},
        ("models.0.routing", "least-busy"),
    ),
    "negative-weight": (
        [{"name": "m", "deployments": [{"provider": "oa", "weight": -1}]}],
        {},
        ("models.0.deployments.0.weight",),
    ),
    "zero-weight": (
        [{"name": "m", "deployments": [{"provider": "oa"}, {"provider": "an", "weight": 0}]}],
        {},
        ("models.0.deployments.1.weight",),
    ),
    "zero-rpm": (
        [{"name": "m", "deployments": [{"provider": "oa", "rpm": 0}]}],
        {},
        ("models.0.deployments.0.rpm",),
    ),
    "zero-max-parallel": (
        [{"name": "m", "deployments": [{"provider": "oa", "max_parallel": 0}]}],
        {},
        ("models.0.deployments.0.max_parallel",),
    ),
    "typo-in-deployment": (
        [{"name": "m", "deployments": [{"provider": "oa", "wieght": 2}]}],
        {},
        ("models.0.deployments.0.wieght",),
    ),
    "negative-retry-attempts": (
        [{"name": "m", "provider": "oa"}],
        {"retry": {"attempts": -1}},
        ("retry.attempts",),
    ),
    "zero-retry-deadline": (
        [{"name": "m", "provider": "oa"}],
        {"retry": {"deadline": 0}},
        ("retry.deadline",),
    ),
    "negative-backoff": (
        [{"name": "m", "provider": "oa"}],
        {"retry": {"backoff_base": -0.5}},
        ("retry.backoff_base",),
    ),
    "zero-circuit-failures": (
        [{"name": "m", "provider": "oa"}],
        {"circuit": {"failures": 0}},
        ("circuit.failures",),
    ),
    "zero-cooldown": (
        [{"name": "m", "provider": "oa"}],
        {"circuit": {"cooldown": 0}},
        ("circuit.cooldown",),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unusable_routing_config_is_refused_naming_the_field(tmp_path: Path, case: str) -> None:
    models, extra, needles = CASES[case]
    message = _refused(tmp_path, models, **extra)
    for needle in needles:
        assert needle in message, message


def test_settings_object_refuses_the_same(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            data_dir=tmp_path,
            providers=PROVIDERS,
            models=[{"name": "m", "deployments": [{"provider": "missing"}]}],
        )
    assert "unknown provider 'missing'" in str(caught.value)


def test_infinite_weight_is_refused_or_harmless(start: StartGateway, ups: Upstreams) -> None:
    models = [
        model(
            "inf",
            deployments=[
                deployment("oa-a", "inf-a", weight=float("inf")),
                deployment("oa-b", "inf-b"),
            ],
        )
    ]
    try:
        gw = start(models)
    except ValidationError as exc:  # refusing it at startup is one right answer...
        assert "weight" in str(exc)
        return
    response = gw.chat("inf")  # ...serving it is the other
    assert response.status_code == 200, response.text
