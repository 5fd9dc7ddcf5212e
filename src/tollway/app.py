"""Wiring: build every component from settings and hang it on one ASGI app."""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from tollway.admin.app import build_admin_app
from tollway.admin.deps import AdminContext
from tollway.asgi import JSON_CONTENT_TYPE, Message, Receive, Scope, Send, new_request_id
from tollway.asgi import send_response as send_bytes
from tollway.auth.directory import KeyDirectory
from tollway.auth.master import ensure_master_key
from tollway.auth.secrets import ServerKeys
from tollway.catalog import Catalog
from tollway.dialects.endpoints import ENDPOINTS_BY_PATH
from tollway.dialects.render import render_error
from tollway.errors import NotFound
from tollway.metering.budget import Ledger
from tollway.metering.limits import Limiter
from tollway.metering.meter import Meter, RateLimiter
from tollway.metering.prices import PriceBook
from tollway.metering.records import Recorder
from tollway.metering.redis_ledger import RedisLedger
from tollway.metering.redis_limits import RedisLimiter
from tollway.metering.sql_ledger import SqlLedger
from tollway.metering.sqlite_ledger import SqliteLedger
from tollway.metering.tokens import TokenCounter
from tollway.pipeline import Pipeline
from tollway.providers.base import Provider
from tollway.providers.registry import build_providers
from tollway.routing.router import Router
from tollway.settings import Dialect, Settings
from tollway.store.db import Database
from tollway.store.migrate import MigrationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollway.app")


class Gateway:
    """The ASGI application: proxy routes on a lean path, the rest to FastAPI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        master_key, _ = ensure_master_key(settings)
        self.providers: dict[str, Provider] = build_providers(settings)
        self.router = Router(settings.models, self.providers, settings.circuit)
        self.server_keys = ServerKeys.from_settings(settings)
        self.db = Database(settings.database_path_url)
        self.directory = KeyDirectory(self.db, self.server_keys, master_key)
        self.redis: Redis | None = None
        if settings.redis_url:
            from redis.asyncio import Redis  # only deployments that share state load it

            self.redis = Redis.from_url(settings.redis_url)
        tokens = TokenCounter()
        self.recorder = Recorder(self.db, settings.data_dir)
        self.meter = Meter(
            PriceBook(),
            self._ledger(),
            self._limiter(),
            self.recorder,
            tokens,
            settings.default_max_output_tokens,
        )
        self.pipeline = Pipeline(
            self.directory,
            self.router,
            self.meter,
            tokens,
            settings.retry,
            settings.max_body_bytes,
            settings.log.access,
        )
        self.catalog = Catalog(self.directory, self.router)
        self.admin: FastAPI = build_admin_app(
            AdminContext(
                self.db,
                self.server_keys,
                master_key.encode(),
                self.recorder,
                frozenset(self.providers),
            )
        )
        self.admin.state.gateway = self

    def _ledger(self) -> Ledger:
        # Exact whatever shares the budget: every process on this database, or on Redis.
        if self.redis is not None:
            return RedisLedger(self.db, self.redis, self.settings.redis_prefix)
        path = self.db.sqlite_file
        if path is not None:
            return SqliteLedger(path)
        return SqlLedger(self.db)

    def _limiter(self) -> RateLimiter:
        if self.redis is not None:
            return RedisLimiter(self.redis, self.settings.redis_prefix)
        if self.settings.workers > 1:
            log.warning(
                "rate limits are counted per worker process; set redis_url to share them",
                extra={"fields": {"workers": self.settings.workers}},
            )
        return Limiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI event."""
        if scope["type"] == "http":
            path: str = scope["path"]
            endpoint = ENDPOINTS_BY_PATH.get(path)
            if endpoint is not None:
                await self.pipeline.handle(endpoint, scope, receive, send)
            elif path == "/v1/models" or path.startswith("/v1/models/"):
                await self.catalog.handle(scope, receive, send)
            elif path.startswith("/v1/"):
                await self._unknown_route(scope, send)
            else:
                await self.admin(scope, receive, _with_request_id(send))
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _unknown_route(self, scope: Scope, send: Send) -> None:
        headers = {k.decode("latin-1"): v for k, v in scope["headers"]}
        dialect = Dialect.ANTHROPIC if "anthropic-version" in headers else Dialect.OPENAI
        error = NotFound(f"Unknown route: {scope['method']} {scope['path']}.")
        request_id = (b"x-request-id", new_request_id().encode())
        await send_bytes(send, 404, render_error(dialect, error), [JSON_CONTENT_TYPE, request_id])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.db.migrate()
                    await self.recorder.start()
                except MigrationError as exc:
                    log.error("startup failed", extra={"fields": {"reason": str(exc)}})
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # Everything built so far lives as long as the process: keep the cyclic
                # collector from rescanning it, so a full collection takes microseconds
                # rather than tens of milliseconds in the middle of a request.
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Finish background writes and close connection pools."""
        await self.directory.drain()
        await self.recorder.aclose()
        if isinstance(self.meter.ledger, SqliteLedger):
            self.meter.ledger.close()
        if self.redis is not None:
            await self.redis.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        await self.db.aclose()


def _with_request_id(send: Send) -> Send:
    request_id = (b"x-request-id", new_request_id().encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), request_id]
        await send(message)

    return wrapped


def create_app(settings: Settings) -> Gateway:
    """Build the gateway for ``settings``."""
    return Gateway(settings)
