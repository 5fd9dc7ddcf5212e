"""Wiring: build every component from settings and hang it on one ASGI app."""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from tollway.admin.app import build_admin_app
from tollway.admin.deps import AdminContext
from tollway.asgi import (
    JSON_CONTENT_TYPE,
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
    header_map,
    new_request_id,
    read_body,
    replay,
)
from tollway.asgi import send_response as send_bytes
from tollway.auth.directory import KeyDirectory
from tollway.auth.master import ensure_master_key
from tollway.auth.secrets import ServerKeys
from tollway.cache.service import ResponseCache
from tollway.cache.store import CacheStore, MemoryCache, RedisCache
from tollway.catalog import Catalog
from tollway.cors import Cors
from tollway.dialects.endpoints import ENDPOINTS_BY_PATH
from tollway.dialects.render import render_error, request_id_headers
from tollway.edge import Edge
from tollway.errors import NotFound, TollwayError
from tollway.events.service import Events
from tollway.guards.runner import Guards
from tollway.metering.budget import Ledger
from tollway.metering.estimates import Estimator
from tollway.metering.holds import Holds
from tollway.metering.limits import Limiter
from tollway.metering.meter import Meter, RateLimiter
from tollway.metering.prices import PriceBook
from tollway.metering.records import Recorder
from tollway.metering.redis_ledger import RedisLedger
from tollway.metering.redis_limits import RedisLimiter
from tollway.metering.retention import Retention
from tollway.metering.sql_ledger import SqlLedger
from tollway.metering.sqlite_ledger import SqliteLedger
from tollway.metering.tokens import TokenCounter
from tollway.pipeline import Pipeline
from tollway.plugins.registry import Plugins
from tollway.providers.base import Provider
from tollway.providers.registry import build_providers
from tollway.responses_socket import PATH as RESPONSES_SOCKET_PATH
from tollway.responses_socket import ResponsesSocket
from tollway.routing.router import Router
from tollway.settings import Dialect, Settings
from tollway.store.db import Database
from tollway.store.migrate import MigrationError
from tollway.switches import SwitchBoard
from tollway.telemetry.access import AccessLog
from tollway.telemetry.metrics import MetricsObserver, build_metrics
from tollway.telemetry.metrics_route import PATH as METRICS_PATH
from tollway.telemetry.observer import Observer, Observers
from tollway.translate.registry import Translations
from tollway.ui.app import install_ui

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollway.app")
# Redis must answer fast or be treated as down: a hung Redis must not hang every call.
REDIS_TIMEOUT_SECONDS = 2.0


class Gateway:
    """The ASGI application: proxy routes on a lean path, the rest to FastAPI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        master_key, _ = ensure_master_key(settings)
        # Everything pluggable (providers, translators, strategies, guards, sinks, admin
        # routers) comes from entry points, the built-ins included.
        self.plugins = Plugins()
        self.providers: dict[str, Provider] = build_providers(settings, self.plugins.provider)
        self.server_keys = ServerKeys.from_settings(settings)
        self.db = Database(settings.database_path_url)
        self.switches = SwitchBoard(self.db)
        strategies = self.plugins.strategies({model.routing for model in settings.models})
        self.router = Router(
            settings.models, self.providers, settings.circuit, strategies, self.switches
        )
        self.directory = KeyDirectory(
            self.db,
            self.server_keys,
            master_key,
            settings.database_grace,
            model_groups=settings.model_groups,
        )
        self.redis: Redis | None = None
        if settings.redis_url:
            self.redis = _redis(settings.redis_url)
        tokens = TokenCounter()
        self.recorder = Recorder(self.db, settings.data_dir)
        self.retention = Retention(self.db, settings.retention)
        self.meter = Meter(
            PriceBook(),
            Holds(self._ledger(self.recorder.instance)),
            self._limiter(),
            self.recorder,
            Estimator(tokens),
            self.router,
            settings.default_max_output_tokens,
            settings.rate_limits_fail_open,
        )
        self.guards = Guards(self.plugins.guard, settings.guards, tokens)
        # Events go to a durable outbox and on to the configured sinks (events/).
        self.events = Events.from_settings(settings, self.plugins.sink, self.db, self.recorder)
        self.recorder.quarantine.listener = self.events.quarantined
        # Telemetry listens to the proxy through one interface (metrics, traces, events).
        self.observer = Observers([*self._observers(), self.events])
        self.pipeline = Pipeline(
            self.directory,
            self.router,
            self.meter,
            settings.retry,
            Translations(self.plugins.translators()),
            self.switches,
            self.guards,
            ResponseCache(self._cache_store(), settings.cache),
            Cors(self.db, self.directory),
            self.observer,
            settings.max_body_bytes,
            settings.body_timeout,
            settings.log.access,
        )
        self.catalog = Catalog(self.directory, self.router)
        self.responses_socket = ResponsesSocket(
            self.pipeline, self.directory, self.switches, settings.max_body_bytes
        )
        self.admin: FastAPI = build_admin_app(
            AdminContext(
                self.db,
                self.server_keys,
                master_key.encode(),
                self.recorder,
                frozenset(self.providers),
                self.redis,
            ),
            self.plugins.admin_routers(),
        )
        self.admin.state.gateway = self
        # The admin UI (/ui): pages, files and sign-in, on the management app.
        install_ui(self.admin, settings)
        # Everything but the proxy path gets its access-log line here (the proxy logs its own).
        self._others = AccessLog(Edge(self._route), settings.log.access)

    def _observers(self) -> list[Observer]:
        """The telemetry observers the settings ask for."""
        observers: list[Observer] = []
        self.metrics: MetricsObserver | None = None
        if self.settings.metrics.enabled:
            master_key, _ = ensure_master_key(self.settings)
            self.metrics = build_metrics(
                self.settings, self.db, self.redis, self.recorder, self.server_keys, master_key
            )
            observers.append(self.metrics)
        if self.settings.telemetry.traces_url is not None:
            # Imported only when asked for: without tracing the OpenTelemetry SDK never loads.
            from tollway.telemetry.tracing import Tracing

            observers.append(Tracing(self.settings.telemetry))
        return observers

    def _cache_store(self) -> CacheStore:
        config = self.settings.cache
        if config.backend == "redis" and self.redis is not None:
            return RedisCache(
                self.redis, f"{self.settings.redis_prefix}cache:", config.max_entry_bytes
            )
        return MemoryCache(config.max_bytes, config.max_entry_bytes)

    def _ledger(self, instance: str) -> Ledger:
        # Exact whatever shares the budget: every process on this database, or on Redis.
        if self.redis is not None:
            return RedisLedger(self.db, self.redis, self.settings.redis_prefix, instance)
        path = self.db.sqlite_file
        if path is not None:
            return SqliteLedger(path, instance)
        return SqlLedger(self.db, instance)

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
            endpoint = ENDPOINTS_BY_PATH.get(scope["path"])
            if endpoint is not None:
                # The proxy path answers its own failures (it must record them too).
                await self.pipeline.handle(endpoint, scope, receive, send)
            else:
                await self._others(scope, receive, send)
        elif scope["type"] == "websocket":
            if scope["path"] == RESPONSES_SOCKET_PATH:
                await self.responses_socket.handle(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/v1/models" or path.startswith("/v1/models/"):
            await self.catalog.handle(scope, receive, send)
        elif path == METRICS_PATH and self.metrics and self.metrics.endpoint.on_gateway_port:
            await self.metrics.endpoint.handle(scope, receive, send)
        elif path.startswith("/v1/"):
            await self._unknown_route(scope, send)
        else:
            await self._admin(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The management API, its request body read first within the same limits as the
        proxy's (size, time, no compression), so the framework never buffers more."""
        send = _with_request_id(send)
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            try:
                headers = header_map(scope)
                limit, within = self.settings.max_body_bytes, self.settings.body_timeout
                body = await read_body(receive, headers, limit, within)
            except TollwayError as error:
                extra = [(k.encode(), v.encode()) for k, v in error.headers.items()]
                body = render_error(Dialect.OPENAI, error)
                await send_bytes(send, error.status, body, [JSON_CONTENT_TYPE, *extra])
                return
            except ClientDisconnected:
                return
            receive = replay(body, receive)
        await self.admin(scope, receive, send)

    async def _unknown_route(self, scope: Scope, send: Send) -> None:
        headers = {k.decode("latin-1"): v for k, v in scope["headers"]}
        dialect = Dialect.ANTHROPIC if "anthropic-version" in headers else Dialect.OPENAI
        error = NotFound(f"Unknown route: {scope['method']} {scope['path']}.")
        ids = request_id_headers(dialect, new_request_id())
        await send_bytes(send, 404, render_error(dialect, error), [JSON_CONTENT_TYPE, *ids])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.db.migrate()
                    await self.recorder.start()  # replays dead processes' journals first
                    self.meter.holds.start()
                    self.retention.start()
                    await self.observer.start()
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
        await self.retention.aclose()
        await self.meter.holds.aclose()
        await self.observer.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        await self.db.aclose()


def _redis(url: str) -> Redis:
    # Only deployments that share state load Redis.
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A pooled connection a restarted Redis closed fails on first use: reconnect and send
    # again (the scripts are safe to repeat: a hold is keyed by its call).
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError],
    )


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
