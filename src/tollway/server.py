"""Run the gateway under uvicorn (uvloop + httptools), in one or several processes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn

from tollway.app import Gateway, create_app
from tollway.auth.master import ensure_master_key, master_key_path
from tollway.auth.secrets import server_secret
from tollway.settings import ConfigError, Settings, load_settings
from tollway.store.db import Database
from tollway.store.migrate import MigrationError
from tollway.telemetry.logs import configure_logging
from tollway.telemetry.metrics_files import shared_values

log = logging.getLogger("tollway.server")
_CONFIG_ENV = "TOLLWAY_CONFIG"


def _loop() -> str:
    return "uvloop" if sys.platform != "win32" else "asyncio"


def worker_app() -> Gateway:
    """App factory for worker processes: settings from the same config as the parent."""
    settings = load_settings()
    configure_logging(settings.log.level)
    return create_app(settings)


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database_path_url)
    try:
        await db.migrate()
    finally:
        await db.aclose()


def _exit_cleanly(signum: int, _frame: object) -> None:
    # uvicorn re-raises the signal that stopped it once shutdown is done; a graceful stop
    # on SIGTERM is a success, so it ends the process with status 0.
    raise SystemExit(0)


def prepare_data_dir(settings: Settings) -> None:
    """Make the data dir (0700) and its generated secrets, before anything else uses it."""
    _, generated = ensure_master_key(settings)
    if generated:
        # Where to find it, never the key: log lines are collected and kept elsewhere.
        log.info(
            "generated a master key",
            extra={"fields": {"path": str(master_key_path(settings))}},
        )
    server_secret(settings)


def serve(settings: Settings, config_path: Path | None) -> None:
    """Migrate the database, then serve until interrupted."""
    configure_logging(settings.log.level)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Once, before any worker starts: workers then find the data dir, its secrets and
    # the schema in place, and only read them.
    prepare_data_dir(settings)
    asyncio.run(_migrate(settings))
    log.info(
        "listening",
        extra={
            "fields": {
                "url": f"http://{settings.host}:{settings.port}",
                "workers": settings.workers,
            }
        },
    )
    common = {
        "host": settings.host,
        "port": settings.port,
        "loop": _loop(),
        "http": "httptools",
        "ws": "websockets-sansio",  # the Responses API over a WebSocket (Codex)
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # no X-Forwarded-* trust; saves a middleware per request
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    # Worker processes re-read the same file; the environment carries everything else.
    if config_path is not None:
        os.environ[_CONFIG_ENV] = str(config_path.resolve())
    os.environ["TOLLWAY_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["TOLLWAY_WORKERS"] = str(settings.workers)
    # Workers keep metric values in files of one directory for this run (named in the
    # environment they inherit), so that any of them can answer a scrape for all.
    with shared_values(settings.data_dir):
        uvicorn.run(
            "tollway.server:worker_app",
            factory=True,
            workers=settings.workers,
            **common,  # type: ignore[arg-type]
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m tollway.server``: what ``tollway serve`` runs once the CLI has checked
    the config (prints a one-line reason and exits non-zero on failure)."""
    parser = argparse.ArgumentParser(prog="tollway serve")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    overrides = {"host": args.host, "port": args.port, "workers": args.workers}
    try:
        settings = load_settings(args.config, overrides)
        serve(settings, args.config)
    except (ConfigError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, ConfigError) else 1) from None


if __name__ == "__main__":
    main()
