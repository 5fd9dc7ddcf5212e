"""Run the gateway under uvicorn (uvloop + httptools), in one or several processes.

SIGTERM  stop accepting, let calls and streams in flight run to their end for up to
         ``shutdown_grace_seconds`` (then cut them: they are still metered), flush
         the journal and the stores, exit 0; with workers, each worker does so
SIGHUP   reload the config in place (reload.py); with workers, in every worker
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from tollway.app import Gateway, create_app
from tollway.auth.master import ensure_master_key, master_key_path
from tollway.auth.secrets import server_secret
from tollway.reload import ConfigSource
from tollway.settings import ConfigError, Settings, config_file
from tollway.store.db import Database
from tollway.store.migrate import MigrationError
from tollway.telemetry.logs import configure_logging
from tollway.telemetry.metrics_files import shared_values
from tollway.tls import ServedCertificate, TlsError

log = logging.getLogger("tollway.server")
_CONFIG_ENV = "TOLLWAY_CONFIG"
WORKER_HEALTHCHECK_SECONDS = 60


def _loop() -> str:
    return "uvloop" if sys.platform != "win32" else "asyncio"


def worker_app() -> Gateway:
    """App factory for worker processes: settings from the same config as the parent."""
    source = ConfigSource(config_file())
    source.early.install()
    settings = source.load()
    configure_logging(settings.log.level)
    return create_app(settings, source)


class Workers(Multiprocess):
    """uvicorn's supervisor of worker processes, with two changes: SIGHUP reloads the
    config inside every worker (uvicorn's own answer replaces the workers, dropping
    their in-memory state), and a stop closes the parent's copy of the listening socket,
    so that once the workers close theirs new connections are refused (a client retries
    elsewhere) instead of queueing where no worker will ever accept them."""

    def handle_hup(self) -> None:
        """Pass SIGHUP on to each worker."""
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGHUP)

    def terminate_all(self) -> None:
        """Stop listening, then ask every worker to drain and exit."""
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database_path_url, settings.database_pool)
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


def _tls(settings: Settings) -> dict[str, ServedCertificate]:
    """uvicorn's options for HTTPS, once the certificate is known to load (TlsError)."""
    if settings.tls is None:
        return {}
    certificate = ServedCertificate(settings.tls)
    certificate.load()
    return {"ssl_context_factory": certificate}


def serve(settings: Settings, source: ConfigSource) -> None:
    """Migrate the database, then serve until stopped."""
    configure_logging(settings.log.level)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    source.early.install()
    tls = _tls(settings)
    # Once, before any worker starts: workers then find the data dir, its secrets and
    # the schema in place, and only read them.
    prepare_data_dir(settings)
    asyncio.run(_migrate(settings))
    scheme = "https" if tls else "http"
    log.info(
        "listening",
        extra={
            "fields": {
                "url": f"{scheme}://{settings.host}:{settings.port}",
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
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        **tls,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings, source), **common)  # type: ignore[arg-type]
        return
    # Worker processes re-read the same file; the environment carries everything else.
    if source.path is not None:
        os.environ[_CONFIG_ENV] = str(source.path.resolve())
    os.environ["TOLLWAY_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["TOLLWAY_WORKERS"] = str(settings.workers)
    # Workers keep metric values in files of one directory for this run (named in the
    # environment they inherit), so that any of them can answer a scrape for all.
    with shared_values(settings.data_dir):
        config = uvicorn.Config(
            "tollway.server:worker_app",
            factory=True,
            workers=settings.workers,
            # A worker answers the supervisor's pings once its interpreter is up: on a
            # busy or throttled host that takes longer than uvicorn's 5 s, and a worker
            # killed for it would be started again, and killed again.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **common,  # type: ignore[arg-type]
        )
        Workers(config, sockets=[config.bind_socket()]).run()


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
        path = config_file(args.config)
        source = ConfigSource(path.resolve() if path else None, overrides)
        serve(source.load(), source)
    except (ConfigError, TlsError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1 if isinstance(exc, MigrationError) else 2) from None


if __name__ == "__main__":
    main()
