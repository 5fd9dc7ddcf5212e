"""Every guard is built from an options dict: unknown names and bad values are refused
with a ValueError that names the option; defaults apply when an option is absent."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.guards.base import Action, RequestGuard, TextGuard
from tollway.guards.injection import InjectionGuard
from tollway.guards.limits import LimitsGuard
from tollway.guards.pii import PiiGuard
from tollway.guards.secrets import SecretsGuard

GUARDS: list[type[TextGuard] | type[RequestGuard]] = [
    PiiGuard,
    SecretsGuard,
    InjectionGuard,
    LimitsGuard,
]


@pytest.mark.parametrize("guard", GUARDS)
def test_unknown_option_is_refused_by_name(guard: type[TextGuard] | type[RequestGuard]) -> None:
    with pytest.raises(ValueError, match=r"unknown option 'colour'"):
        guard({"colour": "blue"})


@pytest.mark.parametrize("guard", GUARDS)
def test_no_options_means_the_defaults(guard: type[TextGuard] | type[RequestGuard]) -> None:
    assert guard({}).options == {}
    assert guard.name in ("pii", "secrets", "injection", "limits")


@pytest.mark.parametrize(
    ("guard", "options", "named"),
    [
        (PiiGuard, {"kinds": ["email", "passport"]}, "kinds"),
        (PiiGuard, {"kinds": "email"}, "kinds"),
        (PiiGuard, {"region": "XX"}, "region"),
        (PiiGuard, {"region": ""}, "region"),
        (PiiGuard, {"private_ips": "yes"}, "private_ips"),
        (SecretsGuard, {"kinds": ["jwt", "cookie"]}, "kinds"),
        (SecretsGuard, {"min_entropy": 9}, "min_entropy"),
        (SecretsGuard, {"min_entropy": "high"}, "min_entropy"),
        (InjectionGuard, {"threshold": 1.5}, "threshold"),
        (InjectionGuard, {"threshold": True}, "threshold"),
        (LimitsGuard, {"max_input_tokens": 0}, "max_input_tokens"),
        (LimitsGuard, {"max_input_tokens": 1.5}, "max_input_tokens"),
        (LimitsGuard, {"max_messages": -1}, "max_messages"),
        (LimitsGuard, {"allowed_tools": "get_weather"}, "allowed_tools"),
        (LimitsGuard, {"allowed_tools": [""]}, "allowed_tools"),
        (LimitsGuard, {"allowed_endpoints": ["chat"]}, "allowed_endpoints"),
        (LimitsGuard, {"bytes_per_token": 0}, "bytes_per_token"),
    ],
)
def test_bad_values_are_refused_by_name(
    guard: type[TextGuard] | type[RequestGuard], options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{guard.name}: .*'{named}'"):
        guard(options)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        PiiGuard(["email"])  # type: ignore[arg-type]


def test_parsed_options() -> None:
    pii = PiiGuard({"kinds": ["email", "phone"], "region": "gb", "private_ips": True})
    assert (pii.kinds, pii.region, pii.private_ips) == (frozenset({"email", "phone"}), "GB", True)
    assert InjectionGuard({"threshold": 1}).threshold == 1.0
    limits = LimitsGuard({"allowed_endpoints": ["responses"], "allowed_tools": ["a*"]})
    assert limits.allowed_endpoints == frozenset({"responses"})
    assert limits.allowed_tools == ("a*",)
    assert limits.max_input_tokens is None and limits.max_messages is None


def test_actions_are_the_four_documented() -> None:
    assert [a.value for a in Action] == ["block", "redact", "flag", "off"]
