"""The entry-point groups Tollway reads, and the names installed in each.

This module imports nothing of Tollway's, so configuration can check a name (a provider
``type``, a routing strategy, a guard) against what is installed without loading any
plugin's code.

The installed entry points are read once per process (``scan``): reading them walks
every installed package's metadata (milliseconds each time), and what is installed
does not change under a running process; installing a plugin means a restart.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points


class Group(StrEnum):
    """One kind of plugin, by its entry-point group."""

    PROVIDERS = "tollway.providers"
    TRANSLATORS = "tollway.translators"
    STRATEGIES = "tollway.strategies"
    GUARDS = "tollway.guards"
    SINKS = "tollway.sinks"
    ADMIN_ROUTERS = "tollway.admin_routers"


class PluginError(Exception):
    """A plugin is missing, ambiguous, broken, or not what its group expects."""


@functools.cache
def scan() -> dict[Group, tuple[EntryPoint, ...]]:
    """Every installed entry point of Tollway's groups (read once; see above)."""
    return {group: tuple(entry_points(group=group.value)) for group in Group}


def installed(group: Group) -> dict[str, EntryPoint]:
    """The group's entry points by name. One name offered by two different objects is
    refused: which one would serve is an accident of install order."""
    found: dict[str, EntryPoint] = {}
    for point in scan()[group]:
        other = found.get(point.name)
        if other is not None and other.value != point.value:
            raise PluginError(
                f"Two plugins register {group.value} '{point.name}': ({origin(other)}) and "
                f"({origin(point)}); uninstall one."
            )
        found[point.name] = point
    return found


def names(group: Group) -> list[str]:
    """The names installed in ``group``, sorted."""
    return sorted(installed(group))


def origin(point: EntryPoint) -> str:
    """Where a plugin comes from, for error messages: its object and package."""
    dist = point.dist
    return f"{point.value}, package {dist.name}" if dist is not None else point.value
