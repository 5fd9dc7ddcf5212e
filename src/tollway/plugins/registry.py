"""Loading plugins by name, each once, each checked against what its group expects.

A plugin is an object named by an entry point in one of the groups in ``groups.py``.
Tollway's own providers, translators, strategies, guards, sinks and admin routers are
registered in its pyproject.toml exactly as a third party's would be in theirs:

    [project.entry-points."tollway.guards"]
    profanity = "my_package.guards:ProfanityGuard"

Only what the configuration names is imported (a guard nobody turned on costs nothing),
except translators and admin routers, which are all used.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tollway.guards.base import RequestGuard, TextGuard
from tollway.plugins.groups import Group, PluginError, installed, origin
from tollway.providers.base import Provider
from tollway.routing.strategy import Strategy
from tollway.telemetry.sinks import Sink
from tollway.translate.base import Translator

GuardType = type[TextGuard] | type[RequestGuard]


class Plugins:
    """The plugins installed in this environment; one per gateway."""

    def __init__(self) -> None:
        self._points = {group: installed(group) for group in Group}
        self._loaded: dict[tuple[Group, str], Any] = {}

    def names(self, group: Group) -> list[str]:
        """Installed names in ``group``, sorted."""
        return sorted(self._points[group])

    def provider(self, name: str) -> type[Provider]:
        """The provider class for a ``type:`` name."""
        found: type[Provider] = self._class(Group.PROVIDERS, name, Provider)
        return found

    def translators(self) -> list[type[Translator]]:
        """Every installed translator."""
        group = Group.TRANSLATORS
        return [self._class(group, name, Translator) for name in self.names(group)]

    def strategies(self, names: set[str]) -> dict[str, Strategy]:
        """One instance of each named routing strategy."""
        return {name: self._class(Group.STRATEGIES, name, Strategy)() for name in sorted(names)}

    def guard(self, name: str) -> GuardType:
        """The guard class registered as ``name``."""
        found = self._load(Group.GUARDS, name)
        if isinstance(found, type) and issubclass(found, TextGuard | RequestGuard):
            if getattr(found, "name", None) != name:
                raise PluginError(
                    f"The guard registered as '{name}' calls itself "
                    f"'{getattr(found, 'name', None)}'; the two must agree."
                )
            return found
        raise self._wrong(Group.GUARDS, name, "a TextGuard or RequestGuard subclass")

    def sink(self, name: str) -> type[Sink]:
        """The event sink class registered as ``name``."""
        found: type[Sink] = self._class(Group.SINKS, name, Sink)
        return found

    def admin_routers(self) -> list[APIRouter]:
        """Every installed management API router (each must guard its routes; the admin
        app refuses to start otherwise)."""
        routers = []
        for name in self.names(Group.ADMIN_ROUTERS):
            found = self._load(Group.ADMIN_ROUTERS, name)
            if not isinstance(found, APIRouter):
                raise self._wrong(Group.ADMIN_ROUTERS, name, "a fastapi.APIRouter")
            routers.append(found)
        return routers

    def _class(self, group: Group, name: str, base: type) -> Any:
        """The class registered as ``name``, checked to be a ``base`` (abstract bases
        are why this returns Any: the callers say what it is)."""
        found = self._load(group, name)
        if not (isinstance(found, type) and issubclass(found, base)):
            raise self._wrong(group, name, f"a {base.__name__} subclass")
        return found

    def _load(self, group: Group, name: str) -> Any:
        key = (group, name)
        if key in self._loaded:
            return self._loaded[key]
        point = self._points[group].get(name)
        if point is None:
            known = ", ".join(self.names(group)) or "none"
            raise PluginError(f"No {group.value} plugin named '{name}' (installed: {known}).")
        try:
            found = point.load()
        except Exception as exc:  # the plugin's own import failed: say which one
            raise PluginError(
                f"The {group.value} plugin '{name}' ({origin(point)}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[key] = found
        return found

    def _wrong(self, group: Group, name: str, expected: str) -> PluginError:
        point = self._points[group][name]
        return PluginError(
            f"The {group.value} plugin '{name}' ({origin(point)}) is not {expected}."
        )
