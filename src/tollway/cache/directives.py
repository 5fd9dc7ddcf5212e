"""What a request's ``Cache-Control`` header lets the gateway do with its cache.

https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1: ``no-store`` forbids keeping the
answer (so there is nothing for this call to read either); ``no-cache`` and
``max-age=0`` ask for a fresh answer, which may still be kept for the next caller.
Directive names are case-insensitive; unknown ones are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping


def cache_directives(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(may read, may store) for a request with these headers."""
    value = headers.get("cache-control")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "cache-control"), None)
    if not value:
        return True, True
    may_read = True
    for directive in value.split(","):
        name, _, argument = directive.partition("=")
        name = name.strip().lower()
        if name == "no-store":
            return False, False
        if name == "no-cache" or (name == "max-age" and _seconds(argument) == 0):
            may_read = False
    return may_read, True


def _seconds(argument: str) -> int | None:
    """A delta-seconds argument (quoted or not), or None when it is not one."""
    text = argument.strip().strip('"')
    return int(text) if text.isdigit() else None
