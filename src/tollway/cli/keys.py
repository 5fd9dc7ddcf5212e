"""``tollway keys``: mint, list, show, update and revoke virtual keys."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from tollway.cli.common import (
    BudgetOption,
    JsonOption,
    MetaOption,
    ParallelOption,
    PeriodOption,
    RpmOption,
    TpmOption,
    given,
    group,
    limit_fields,
    parse_pairs,
    patch,
    run,
    show,
)

app = group("keys", "Virtual keys for clients and sandboxes.")
COLUMNS = ["id", "name", "key_prefix", "project_id", "status", "expires_at", "models", "metadata"]

ModelsOption = Annotated[
    str | None, typer.Option(help="Comma-separated model names or globs (default: all).")
]
MaxRequestsOption = Annotated[int | None, typer.Option("--max-requests", help="Lifetime requests.")]


def _models(models: str | None) -> list[str] | None:
    return [m.strip() for m in models.split(",") if m.strip()] if models else None


def env_block(key: str, base_url: str) -> str:
    """Shell exports that point the common SDKs and coding agents at the gateway."""
    base = base_url.rstrip("/")
    values = {
        "OPENAI_BASE_URL": f"{base}/v1",
        "OPENAI_API_KEY": key,
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": key,
        # Claude Code sends ANTHROPIC_AUTH_TOKEN as a bearer token; both are accepted.
        "ANTHROPIC_AUTH_TOKEN": key,
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


@app.command("create")
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
    env: Annotated[bool, typer.Option("--env", help="Print a ready-to-source block.")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Gateway URL as the sandbox sees it (default: --url).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Mint a key; its secret is printed this once."""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {
            "name": name,
            "project": project,
            "ttl": ttl,
            "expires_at": expires_at,
            "models": _models(models),
            "max_requests": max_requests,
        }
    )
    created = run(ctx, "POST", "/keys", json=body)
    if env:
        print(env_block(created["key"], base_url or ctx.obj.url))
    elif as_json:
        show(created, True)
    else:
        show(created, False)
        typer.secho("Store the key now: it cannot be shown again.", err=True, fg="yellow")


@app.command("list")
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
def show_key(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Show one key."""
    show(run(ctx, "GET", f"/keys/{key_id}"), as_json)


@app.command("update")
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
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch the key on or off.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a key's name, models, limits, metadata or active flag."""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {"name": name, "models": _models(models), "max_requests": max_requests, "active": active}
    )
    patch(ctx, f"/keys/{key_id}", body, as_json)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: str, as_json: JsonOption = False) -> None:
    """Revoke a key now, everywhere."""
    revoked = run(ctx, "DELETE", f"/keys/{key_id}")
    if as_json:
        show(revoked, True)
    else:
        print(f"revoked {revoked['id']} ({revoked['name']})")
