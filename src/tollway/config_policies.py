"""The configuration sections for policies: guards and the response cache (event sinks
are in ``events/config.py``).

Guards are plugins, so their options are checked by the plugin itself when the gateway
builds it (a bad option stops startup with the guard's own message); here only the shape
and the names are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tollway.config import Strict, installed_plugin
from tollway.plugins.groups import Group

GUARD_ACTIONS = ("block", "redact", "flag", "off")


def check_guards(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: {action: ..., **options}}`` with installed names and known actions."""
    for name, setting in value.items():
        installed_plugin(Group.GUARDS, "guard", name)
        if not isinstance(setting, dict):
            raise ValueError(f"guards.{name}: give a mapping such as {{action: redact}}")
        action = setting.get("action")
        if action not in GUARD_ACTIONS:
            raise ValueError(f"guards.{name}.action: one of {', '.join(GUARD_ACTIONS)}")
    return value


class CacheConfig(Strict):
    """The response cache: exact-match answers, per project unless ``shared``."""

    enabled: bool = Field(False, description="Default for projects that do not set it.")
    backend: Literal["memory", "redis"] = "memory"
    ttl: int = Field(300, ge=1, le=86_400, description="Seconds an answer is kept.")
    max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Memory backend: total size (LRU beyond)."
    )
    max_entry_bytes: int = Field(1024 * 1024, ge=1024, description="Larger answers are not cached.")
    sampled: bool = Field(
        False,
        description="Cache sampled calls too (temperature > 0 or unset, top_p < 1, n > 1): "
        "off, since every such call asks for a new draw.",
    )
    shared: bool = Field(
        False, description="One cache for every project (default: each project its own)."
    )
