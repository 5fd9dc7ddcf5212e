"""Reading a guard's options dict: known names only, each checked for type and range.

Every error is a ``ValueError`` that names the guard and the option, so a config error
reads ``pii: unknown option 'kind' (known: kinds, region, private_ips)``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def check_names(guard: str, options: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse an options dict with a name the guard does not know."""
    if not isinstance(options, Mapping):
        raise ValueError(f"{guard}: options must be a mapping, not {type(options).__name__}")
    for name in options:
        if name not in known:
            raise ValueError(
                f"{guard}: unknown option {name!r} (known: {', '.join(sorted(known))})"
            )


def choices(
    guard: str,
    options: Mapping[str, Any],
    name: str,
    allowed: Collection[str],
    default: Collection[str],
) -> frozenset[str]:
    """A list option whose items each come from ``allowed``."""
    value = options.get(name)
    if value is None:
        return frozenset(default)
    items = strings(guard, options, name)
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        raise ValueError(
            f"{guard}: option {name!r} has unknown value(s) {', '.join(map(repr, unknown))}"
            f" (allowed: {', '.join(sorted(allowed))})"
        )
    return frozenset(items)


def strings(guard: str, options: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A list of non-empty strings (a single string is refused: it is a common slip)."""
    value = options.get(name)
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise ValueError(f"{guard}: option {name!r} must be a list of non-empty strings")
    return tuple(value)


def integer(guard: str, options: Mapping[str, Any], name: str, *, minimum: int = 1) -> int | None:
    """An optional whole number of at least ``minimum``."""
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{guard}: option {name!r} must be an integer >= {minimum}")
    return value


def number(
    guard: str,
    options: Mapping[str, Any],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
) -> float:
    """A number within ``[minimum, maximum]``."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{guard}: option {name!r} must be a number")
    if not minimum <= value <= maximum:
        raise ValueError(f"{guard}: option {name!r} must be between {minimum} and {maximum}")
    return float(value)


def flag(guard: str, options: Mapping[str, Any], name: str, default: bool) -> bool:
    """A true/false option."""
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{guard}: option {name!r} must be true or false")
    return value


def text(guard: str, options: Mapping[str, Any], name: str, default: str) -> str:
    """A non-empty string option."""
    value = options.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{guard}: option {name!r} must be a non-empty string")
    return value
