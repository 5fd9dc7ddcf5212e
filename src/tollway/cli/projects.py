"""``tollway projects``: groups of keys with shared limits and credentials."""

from __future__ import annotations

from typing import Annotated

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
from tollway.cli.connection import connected

app = group("projects", "Projects: budgets, limits and credentials shared by keys.")
COLUMNS = ["id", "name", "active", "max_budget_usd", "budget_period", "credential_providers"]

CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        metavar="PROVIDER=KEY",
        help="A provider's API key for this project's keys (repeat).",
    ),
]


def _credentials(credential: list[str] | None) -> dict[str, str] | None:
    return parse_pairs(credential, "--credential") or None


@app.command("create")
@connected
def create(
    ctx: typer.Context,
    name: str,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    meta: MetaOption = None,
    credential: CredentialOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project."""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {"name": name, "credentials": _credentials(credential)}
    )
    show(run(ctx, "POST", "/projects", json=body), as_json)


@app.command("list")
@connected
def list_projects(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List projects."""
    show(run(ctx, "GET", "/projects"), as_json, COLUMNS, "projects")


@app.command("show")
@connected
def show_project(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Show one project (by id or name)."""
    show(run(ctx, "GET", f"/projects/{project}"), as_json)


@app.command("update")
@connected
def update(
    ctx: typer.Context,
    project: str,
    budget: BudgetOption = None,
    budget_period: PeriodOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    max_parallel: ParallelOption = None,
    meta: MetaOption = None,
    credential: CredentialOption = None,
    active: Annotated[
        bool | None, typer.Option("--activate/--deactivate", help="Switch all its keys.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project's limits, credentials or active flag."""
    body = limit_fields(budget, budget_period, rpm, tpm, max_parallel, meta) | given(
        {"credentials": _credentials(credential), "active": active}
    )
    patch(ctx, f"/projects/{project}", body, as_json)


@app.command("revoke-keys")
@connected
def revoke_keys(ctx: typer.Context, project: str, as_json: JsonOption = False) -> None:
    """Revoke every key of a project."""
    result = run(ctx, "POST", f"/projects/{project}/revoke-keys")
    if as_json:
        show(result, True)
    else:
        print(f"revoked {result['revoked']} keys of {result['project_id']}")
