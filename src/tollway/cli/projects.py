"""``tollway projects``: groups of keys with shared limits and credentials."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from tollway.cli.common import JsonOption, die, group, parse_pairs, run, show

app = group("projects", "Projects: budgets, limits and credentials shared by keys.")
COLUMNS = ["id", "name", "active", "max_budget_usd", "budget_period", "credential_providers"]

Budget = Annotated[Decimal | None, typer.Option("--budget", help="Max spend in USD.")]
Period = Annotated[str | None, typer.Option("--budget-period", help="day or month.")]
Credential = Annotated[
    list[str] | None,
    typer.Option("--credential", help="provider=api_key used for this project's keys."),
]
Meta = Annotated[list[str] | None, typer.Option("--meta", help="Metadata name=value (repeat).")]


def _fields(
    budget: Decimal | None,
    period: str | None,
    rpm: int | None,
    tpm: int | None,
    parallel: int | None,
    meta: list[str] | None,
    credential: list[str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "max_budget_usd": str(budget) if budget is not None else None,
        "budget_period": period,
        "rpm": rpm,
        "tpm": tpm,
        "max_parallel": parallel,
        "metadata": parse_pairs(meta, "--meta") or None,
        "credentials": parse_pairs(credential, "--credential") or None,
    }
    return {k: v for k, v in body.items() if v is not None}


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    budget: Budget = None,
    budget_period: Period = None,
    rpm: Annotated[int | None, typer.Option()] = None,
    tpm: Annotated[int | None, typer.Option()] = None,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel")] = None,
    meta: Meta = None,
    credential: Credential = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project."""
    body = {"name": name} | _fields(budget, budget_period, rpm, tpm, max_parallel, meta, credential)
    show(run(ctx, "POST", "/projects", json=body), as_json)


@app.command("list")
def list_projects(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List projects."""
    show(run(ctx, "GET", "/projects"), as_json, COLUMNS, "projects")


@app.command("show")
def show_project(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Show one project (by id or name)."""
    show(run(ctx, "GET", f"/projects/{project}"), as_json)


@app.command("update")
def update(
    ctx: typer.Context,
    project: str,
    budget: Budget = None,
    budget_period: Period = None,
    rpm: Annotated[int | None, typer.Option()] = None,
    tpm: Annotated[int | None, typer.Option()] = None,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel")] = None,
    meta: Meta = None,
    credential: Credential = None,
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch all its keys.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project's limits, credentials or active flag."""
    body = _fields(budget, budget_period, rpm, tpm, max_parallel, meta, credential)
    if active is not None:
        body["active"] = active
    if not body:
        die("nothing to update: give at least one option")
    show(run(ctx, "PATCH", f"/projects/{project}", json=body), as_json)


@app.command("revoke-keys")
def revoke_keys(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Revoke every key of a project."""
    result = run(ctx, "POST", f"/projects/{project}/revoke-keys")
    if as_json:
        show(result, True)
    else:
        print(f"revoked {result['revoked']} keys of {result['project_id']}")
