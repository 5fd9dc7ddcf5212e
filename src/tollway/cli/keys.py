"""``tollway keys``: mint, list, show, update and revoke virtual keys."""

from __future__ import annotations

import fnmatch
import shlex
from typing import Annotated, Any

import typer

from tollway.cli.agents import KEY_VAR, TARGETS, NewKey, Setup, parse_targets, public_base
from tollway.cli.common import (
    USAGE,
    BudgetOption,
    GuardOption,
    GuardsOption,
    JsonOption,
    MetaOption,
    ModelsOption,
    ParallelOption,
    PeriodOption,
    RpmOption,
    TpmOption,
    die,
    given,
    group,
    guard_settings,
    limit_fields,
    model_scope,
    parse_pairs,
    patch,
    run,
    show,
)
from tollway.cli.connection import connected, connection, is_http_url

app = group("keys", "Virtual keys for clients and sandboxes.")
COLUMNS = ["id", "name", "key_prefix", "project_id", "status", "expires_at", "models", "metadata"]

MaxRequestsOption = Annotated[int | None, typer.Option("--max-requests", help="Lifetime requests.")]
SETUP_PANEL = "Agent setup"


@app.command("create")
@connected
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for people.")],
    project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime: 90s, 15m, 24h, 7d.")] = None,
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="ISO time, e.g. 2026-12-01T00:00:00Z.")
    ] = None,
    models: ModelsOption = None,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    max_requests: MaxRequestsOption = None,
    meta: MetaOption = None,
    guard: GuardOption = None,
    guards: GuardsOption = None,
    agents: Annotated[
        list[str] | None,
        typer.Option(
            "--for",
            metavar="AGENT",
            help=f"Print what an agent needs to use the key: {', '.join(TARGETS)} "
            "(repeat or comma-separate).",
            rich_help_panel=SETUP_PANEL,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="The model the agents should use (with --for).",
            rich_help_panel=SETUP_PANEL,
        ),
    ] = None,
    env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Print exports for the OpenAI and Anthropic SDKs (same as --for env).",
            rich_help_panel=SETUP_PANEL,
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            envvar="TOLLWAY_PUBLIC_URL",
            show_envvar=False,
            metavar="URL",
            help="The gateway's address as the agent sees it "
            "(env TOLLWAY_PUBLIC_URL, default: --url).",
            rich_help_panel=SETUP_PANEL,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Mint a key; its secret is printed this once."""
    targets = _targets([*(agents or []), *(["env"] if env else [])], model, model_scope(models))
    # Checked before the key exists: a usage error must not leave a key behind.
    base = _agent_base(ctx, base_url) if targets else ""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {
            "name": name,
            "project": project,
            "ttl": ttl,
            "expires_at": expires_at,
            "models": model_scope(models),
            "max_requests": max_requests,
            "guards": guard_settings(guard, guards),
        }
    )
    created = run(ctx, "POST", "/keys", json=body)
    if not targets:
        show(created, as_json)
        if not as_json:
            typer.secho("Store the key now: it cannot be shown again.", err=True, fg="yellow")
        return
    new = NewKey(created["key"], base, model, created.get("models") or [])
    setups = {target: TARGETS[target](new) for target in targets}
    if as_json:
        show(created | {"setup": {t: setup.as_json() for t, setup in setups.items()}}, True)
    else:
        _print_setups(setups, new.secret)


def _targets(requested: list[str], model: str | None, scope: list[str] | None) -> list[str]:
    """The --for targets, checked along with --model."""
    try:
        targets = parse_targets(requested)
    except ValueError as exc:
        die(f"--for: {exc}", USAGE)
    if model and not targets:
        die("--model sets the model in an agent's setup: give --for as well", USAGE)
    # A scope naming a group is checked by the gateway: only it knows the group's models.
    grouped = any(entry.startswith("group:") for entry in scope or ())
    if model and scope and not grouped and not any(fnmatch.fnmatchcase(model, g) for g in scope):
        die(f"--model {model!r} is not among the key's --models", USAGE)
    return targets


def _agent_base(ctx: typer.Context, base_url: str | None) -> str:
    """Where agents reach the gateway: --base-url, else --url."""
    if base_url is None:
        return public_base(connection(ctx).resolved_url)
    if not is_http_url(base_url):
        die(f"--base-url: expected http(s)://host[:port], got {base_url!r}", USAGE)
    return public_base(base_url)


def _print_setups(setups: dict[str, Setup], secret: str) -> None:
    """Each agent's block on stdout; what people must still do on stderr."""
    # One agent's block alone is exactly its file (TOML, JSON) or a block to source.
    for index, (target, setup) in enumerate(setups.items()):
        if len(setups) > 1:
            print(("\n" if index else "") + f"# ---- {target}")
        print(setup.text)
    saves = [f"the {name} block as {setup.file}" for name, setup in setups.items() if setup.file]
    notes = [setup.hint for setup in setups.values() if setup.hint]
    if saves:
        notes.append(
            f"Save {' and '.join(saves)}, and run {'them' if len(saves) > 1 else 'it'} "
            "with the key in the environment:\n"
            f"  export {KEY_VAR}={shlex.quote(secret)}"
        )
    for note in notes:
        typer.secho(note, err=True, fg="yellow")


@app.command("list")
@connected
def list_keys(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only usable / unusable keys.")
    ] = None,
    meta: MetaOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List keys, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if project:
        params["project"] = project
    if active is not None:
        params["active"] = str(active).lower()
    params.update({f"metadata.{k}": v for k, v in parse_pairs(meta, "--meta").items()})
    show(run(ctx, "GET", "/keys", params=params), as_json, COLUMNS, "keys")


@app.command("show")
@connected
def show_key(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Show one key."""
    show(run(ctx, "GET", f"/keys/{key_id}"), as_json)


@app.command("update")
@connected
def update(
    ctx: typer.Context,
    key_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    models: ModelsOption = None,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    max_requests: MaxRequestsOption = None,
    meta: MetaOption = None,
    guard: GuardOption = None,
    guards: GuardsOption = None,
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch the key on or off.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a key's name, models, limits, guards, metadata or active flag."""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {
            "name": name,
            "models": model_scope(models),
            "max_requests": max_requests,
            "guards": guard_settings(guard, guards),
            "active": active,
        }
    )
    patch(ctx, f"/keys/{key_id}", body, as_json)


@app.command("revoke")
@connected
def revoke(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Revoke a key now, everywhere."""
    revoked = run(ctx, "DELETE", f"/keys/{key_id}")
    if as_json:
        show(revoked, True)
    else:
        print(f"revoked {revoked['id']} ({revoked['name']})")
