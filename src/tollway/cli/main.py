"""``tollway``: serve the gateway, migrate its database, and manage keys, projects, spend,
kill switches and the audit log of a running one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tollway.cli import audit, events, keys, projects, requests, spend, switches

app = typer.Typer(
    name="tollway",
    help="A secure, metered gateway for LLM APIs.",
    no_args_is_help=True,
    add_completion=False,
    # Inherited by every group and command.
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.add_typer(keys.app)
app.add_typer(projects.app)
app.add_typer(audit.app)
app.add_typer(spend.app)
app.add_typer(switches.app)
app.add_typer(requests.app)
app.add_typer(requests.subjects)
app.add_typer(events.app)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: ./tollway.yaml)."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line reason and return the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Run the gateway."""
    # Imported here, as in migrate: the settings machinery is most of the CLI's start-up
    # time, and the commands that talk to a gateway never need it.
    from tollway.auth.master import ensure_master_key, master_key_path
    from tollway.settings import ConfigError, load_settings

    try:
        settings = load_settings(config, {"host": host, "port": port, "workers": workers})
        key, generated = ensure_master_key(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if generated:
        typer.echo(
            f"Generated a master key (stored in {master_key_path(settings)}, mode 0600):\n"
            f"  {key}\nIt is shown only this once."
        )
    if not settings.providers:
        typer.secho(
            "warning: no providers configured; set OPENAI_API_KEY / ANTHROPIC_API_KEY "
            "or write a tollway.yaml (see README).",
            err=True,
            fg=typer.colors.YELLOW,
        )
    # The server runs in a fresh interpreter image (same process id): the CLI's own
    # libraries (typer, rich, httpx) would otherwise stay resident for the server's life.
    argv = [sys.executable, "-m", "tollway.server"]
    for flag, value in (("--config", config), ("--host", host), ("--port", port)):
        if value is not None:
            argv += [flag, str(value)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    sys.stdout.flush()
    sys.stderr.flush()
    # Two malloc arenas instead of one per thread: the database driver's threads would
    # otherwise each hold an arena of mostly idle memory.
    env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
    os.execve(sys.executable, argv, env)  # noqa: S606 (same interpreter, no shell)


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Bring the database schema up to date."""
    import asyncio

    from tollway.settings import ConfigError, load_settings
    from tollway.store.db import Database
    from tollway.store.migrate import MigrationError

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None

    async def upgrade() -> str | None:
        db = Database(settings.database_path_url, settings.database_pool)
        try:
            return await db.migrate()
        finally:
            await db.aclose()

    try:
        revision = asyncio.run(upgrade())
    except MigrationError as exc:
        raise fail(str(exc), 1) from None
    typer.echo(f"database at revision {revision}")


@app.command()
def version() -> None:
    """Print the version."""
    from tollway import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: usage errors are one line, like every other failure."""
    try:
        result = app(standalone_mode=False)
    except typer.Abort:
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # typer's (click's) usage errors
        show = getattr(exc, "show", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and callable(show):
            show()
        else:
            typer.secho(f"error: {exc.format_message()}", err=True, fg=typer.colors.RED)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(result if isinstance(result, int) else 0)
