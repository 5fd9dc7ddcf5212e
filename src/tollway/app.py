"""Wiring: build every component from settings and hang it on one ASGI app."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
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
from tollway.interpreter import tune_for_serving
from tollway.live import Generation, Live, reusable_providers
from tollway.metering.budget import Ledger
from tollway.metering.compaction import Compaction
from tollway.metering.estimates import Estimator
from tollway.metering.holds import Holds
from tollway.metering.limits import Limiter
from tollway.metering.meter import Meter
from tollway.metering.outcome import RateLimiter
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
from tollway.reload import ConfigSource, Reloader, reloaded_settings
from tollway.responses_socket import PATH as RESPONSES_SOCKET_PATH
from tollway.responses_socket import ResponsesSocket
from tollway.routing.router import Router
from tollway.settings import Dialect, Settings
from tollway.store.db import Database
from tollway.store.migrate import MigrationError
from tollway.store.redis_client import connect_redis
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


class Gateway:
    """The ASGI application: proxy routes on a lean path, the rest to FastAPI."""

    def __init__(self, settings: Settings, source: ConfigSource | None = None) -> None:
        self._settings = settings
        master_key, _ = ensure_master_key(settings)
        # Everything pluggable (providers, translators, strategies, guards, sinks, admin
        # routers) comes from entry points, the built-ins included.
        self.plugins = Plugins()
        self.server_keys = ServerKeys.from_settings(settings)
        self.db = Database(settings.database_path_url, settings.database_pool)
        self.switches = SwitchBoard(self.db)
        providers, router = self._routing(settings, None)
        self.directory = KeyDirectory(
            self.db,
            self.server_keys,
            master_key,
            settings.database_grace,
            model_groups=settings.model_groups,
        )
        self.redis: Redis | None = None
        if settings.redis_url:
            self.redis = connect_redis(settings.redis_url)
        self._tokens = tokens = TokenCounter()
        self.recorder = Recorder(self.db, settings.data_dir)
        self.retention = Retention(self.db, settings.retention)
        self.compaction = Compaction(self.db)  # running spend totals for reports
        self.meter = Meter(
            PriceBook(),
            Holds(self._ledger(self.recorder.instance)),
            self._limiter(),
            self.recorder,
            Estimator(tokens),
            router,
            settings.default_max_output_tokens,
            settings.rate_limits_fail_open,
        )
        # Events go to a durable outbox and on to the configured sinks (events/).
        self.events = Events.from_settings(settings, self.plugins.sink, self.db, self.recorder)
        self.recorder.quarantine.listener = self.events.quarantined
        # Telemetry listens to the proxy through one interface (metrics, traces, events).
        self.observer = Observers([*self._observers(), self.events])
        # Failed database and Redis operations, wherever they are handled, are counted.
        self.db.failures.listener = self.observer.store_failed
        self._translations = Translations(self.plugins.translators())
        self._response_cache = ResponseCache(self._cache_store(), settings.cache)
        self._cors = Cors(self.db, self.directory)
        # Providers, routes, guards and the pipeline on them: one generation per config
        # version, swapped on reload (live.py, reload.py).
        self.live = Live(self._generation(settings, providers, router))
        self.reloader: Reloader | None = None
        if source is not None:
            self.reloader = Reloader(source, self.reload, settings.config_watch_seconds)
        self.responses_socket = ResponsesSocket(
            self.live.handle, self.directory, self.switches, settings.max_body_bytes
        )
        self.admin: FastAPI = build_admin_app(
            AdminContext(
                self.db,
                self.server_keys,
                master_key.encode(),
                self.recorder,
                frozenset(providers),
                self.redis,
            ),
            self.plugins.admin_routers(),
        )
        self.admin.state.gateway = self
        # The admin UI (/ui): pages, files and sign-in, on the management app.
        install_ui(self.admin, settings)
        # Everything but the proxy path gets its access-log line here (the proxy logs its own).
        self._others = AccessLog(Edge(self._route), settings.log.access)

    @property
    def settings(self) -> Settings:
        """The settings in force (those of the current generation)."""
        return self.live.current.settings

    @property
    def providers(self) -> dict[str, Provider]:
        """The current generation's providers."""
        return self.live.current.providers

    @property
    def router(self) -> Router:
        """The current generation's router."""
        return self.live.current.router

    @property
    def guards(self) -> Guards:
        """The current generation's guards."""
        return self.live.current.guards

    def _routing(
        self, settings: Settings, previous: Generation | None
    ) -> tuple[dict[str, Provider], Router]:
        """Providers (unchanged ones carried over from ``previous``) and the router."""
        kept = reusable_providers(previous, settings)
        providers = build_providers(settings, self.plugins.provider, kept)
        strategies = self.plugins.strategies({model.routing for model in settings.models})
        return providers, Router(
            settings.models, providers, settings.circuit, strategies, self.switches
        )

    def _generation(
        self, settings: Settings, providers: dict[str, Provider], router: Router
    ) -> Generation:
        """What ``settings`` builds for the proxy path, on the gateway's shared parts."""
        guards = Guards(self.plugins.guard, settings.guards, self._tokens)
        pipeline = Pipeline(
            self.directory,
            router,
            self.meter,
            settings.retry,
            self._translations,
            self.switches,
            guards,
            self._response_cache,
            self._cors,
            self.observer,
            settings.max_body_bytes,
            settings.body_timeout,
            settings.log.access,
        )
        catalog = Catalog(self.directory, router)
        return Generation(settings, providers, router, guards, pipeline, catalog)

    def reload(self, loaded: Settings) -> list[str]:
        """New calls run on ``loaded``'s providers, models, routing and guards (calls in flight
        keep theirs); returns the other settings it changes, which wait for a restart."""
        settings, pending = reloaded_settings(self.settings, loaded)
        providers: dict[str, Provider] = {}
        try:
            providers, router = self._routing(settings, self.live.current)
            generation = self._generation(settings, providers, router)
        except BaseException:
            self.live.discard(providers)
            raise
        self.live.swap(generation)
        self.meter.router = router
        self.directory.use_groups(settings.model_groups)
        self.admin.state.admin = replace(
            self.admin.state.admin, provider_names=frozenset(providers)
        )
        return pending

    def _observers(self) -> list[Observer]:
        """The telemetry observers the settings ask for."""
        observers: list[Observer] = []
        self.metrics: MetricsObserver | None = None
        if self._settings.metrics.enabled:
            master_key, _ = ensure_master_key(self._settings)
            self.metrics = build_metrics(
                self._settings, self.db, self.redis, self.recorder, self.server_keys, master_key
            )
            observers.append(self.metrics)
        if self._settings.telemetry.traces_url is not None:
            # Imported only when asked for: without tracing the OpenTelemetry SDK never loads.
            from tollway.telemetry.tracing import Tracing

            observers.append(Tracing(self._settings.telemetry))
        return observers

    def _cache_store(self) -> CacheStore:
        config = self._settings.cache
        if config.backend == "redis" and self.redis is not None:
            return RedisCache(
                self.redis,
                f"{self._settings.redis_prefix}cache:",
                config.max_entry_bytes,
                failures=self.db.failures,
            )
        return MemoryCache(config.max_bytes, config.max_entry_bytes)

    def _ledger(self, instance: str) -> Ledger:
        # Exact whatever shares the budget: every process on this database, or on Redis.
        if self.redis is not None:
            return RedisLedger(self.db, self.redis, self._settings.redis_prefix, instance)
        path = self.db.sqlite_file
        if path is not None:
            return SqliteLedger(path, instance)
        return SqlLedger(self.db, instance)

    def _limiter(self) -> RateLimiter:
        if self.redis is not None:
            return RedisLimiter(self.redis, self._settings.redis_prefix)
        if self._settings.workers > 1:
            log.warning(
                "rate limits are counted per worker process; set redis_url to share them",
                extra={"fields": {"workers": self._settings.workers}},
            )
        return Limiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI event."""
        if scope["type"] == "http":
            endpoint = ENDPOINTS_BY_PATH.get(scope["path"])
            if endpoint is not None:
                # The proxy path answers its own failures (it must record them too).
                await self.live.handle(endpoint, scope, receive, send)
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
            await self.live.current.catalog.handle(scope, receive, send)
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
                    self.compaction.start()
                    await self.observer.start()
                    if self.reloader is not None:
                        self.reloader.start()
                except MigrationError as exc:
                    log.error("startup failed", extra={"fields": {"reason": str(exc)}})
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                tune_for_serving()
                log.info("ready", extra={"fields": {"pid": os.getpid()}})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Calls cut at the deadline write their records before the journal closes.
                await self.live.settle()
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Finish background writes and close connection pools."""
        if self.reloader is not None:
            await self.reloader.aclose()
        await self.directory.drain()
        await self.recorder.aclose()
        await self.retention.aclose()
        await self.compaction.aclose()
        await self.meter.holds.aclose()
        await self.observer.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.live.aclose()
        await self.db.aclose()


def _with_request_id(send: Send) -> Send:
    request_id = (b"x-request-id", new_request_id().encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), request_id]
        await send(message)

    return wrapped


def create_app(settings: Settings, source: ConfigSource | None = None) -> Gateway:
    """Build the gateway for ``settings``; with ``source``, it reloads them from there on
    SIGHUP and when the file changes."""
    return Gateway(settings, source)
