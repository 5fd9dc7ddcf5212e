"""``tollway switches``: turn the whole proxy, a provider or a deployment off and on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import USAGE, JsonOption, die, group, run, show
from tollway.cli.connection import connected

app = group("switches", "Kill switches: the whole proxy, a provider, a deployment.")
_STATES = {"on": True, "off": False}
_SET_HELP = (
    "What to switch, then on or off: 'proxy off', 'provider NAME off', "
    "'deployment PROVIDER/MODEL on'."
)


def _rows(switches: dict[str, Any]) -> list[dict[str, str]]:
    rows = [{"switch": "proxy", "name": "", "state": _word(switches["proxy"])}]
    for kind, field in (("provider", "providers"), ("deployment", "deployments")):
        rows += [
            {"switch": kind, "name": name, "state": _word(on)}
            for name, on in switches[field].items()
        ]
    return rows


def _word(on: bool) -> str:
    return "on" if on else "off"


def _body(words: list[str]) -> tuple[dict[str, Any], str]:
    """The PATCH body for ``proxy off`` / ``provider NAME off`` / ``deployment P/M on``,
    and what it names."""
    kind, *rest = words or [""]
    if kind == "proxy" and len(rest) == 1:
        name, state = "", rest[0]
    elif kind in ("provider", "deployment") and len(rest) == 2:
        name, state = rest
    else:
        die(f"expected {_SET_HELP.removeprefix('What to switch, then on or off: ')}", USAGE)
    if state not in _STATES:
        die(f"the state is 'on' or 'off', got {state!r}", USAGE)
    if kind == "proxy":
        return {"proxy": _STATES[state]}, "proxy"
    if kind == "deployment" and "/" not in name:
        die(f"a deployment is PROVIDER/MODEL, as 'switches show' lists it; got {name!r}", USAGE)
    return {f"{kind}s": {name: _STATES[state]}}, f"{kind} {name}"


@app.command("show")
@connected
def show_switches(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show every switch: the proxy, each provider, each deployment."""
    switches = run(ctx, "GET", "/switches")
    if as_json:
        show(switches, True)
    else:
        show(_rows(switches), False, ["switch", "name", "state"], "switches")


@app.command("set")
@connected
def set_switch(
    ctx: typer.Context,
    words: Annotated[list[str], typer.Argument(metavar="WHAT [NAME] on|off", help=_SET_HELP)],
    as_json: JsonOption = False,
) -> None:
    """Turn the proxy, a provider or a deployment off or on, in every gateway process."""
    body, named = _body(words)
    switches = run(ctx, "PATCH", "/switches", json=body)
    if as_json:
        show(switches, True)
        return
    if "proxy" in body:
        now = switches["proxy"]
    else:
        field, names = next(iter(body.items()))
        now = switches[field][next(iter(names))]
    print(f"{named}: {_word(now)}")
