"""The proxy path, top to bottom.

    authenticate -> read and check the body -> route -> authorize -> admit
    -> call upstream -> relay the response -> meter and log

Each step is one named call so later concerns (virtual keys, budgets, limits, retries and
fallbacks, translation) slot into their own step without reshaping the path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.asgi import (
    JSON_CONTENT_TYPE,
    ClientDisconnected,
    RawHeaders,
    Receive,
    Scope,
    Send,
    header_map,
    new_request_id,
    read_body,
    send_response,
)
from tollway.auth.credentials import Principal
from tollway.auth.directory import KeyDirectory
from tollway.dialects.endpoints import Endpoint, RequestInfo, inspect
from tollway.dialects.render import render_error
from tollway.dialects.validate import Payload, parse_object
from tollway.errors import BadRequest, Forbidden, MethodNotAllowed, TollwayError
from tollway.metering.tokens import TokenCounter
from tollway.providers.base import UpstreamCall
from tollway.providers.transport import UpstreamResponse
from tollway.relay import StreamOutcome, send_stream, send_whole, until_disconnect
from tollway.routing.router import Route, Router
from tollway.telemetry.logs import ACCESS_LOGGER

# Client headers a provider may forward upstream; everything else stays here.
_FORWARDED = ("anthropic-version", "anthropic-beta")
# Statuses meaning "this upstream has no count_tokens": answer with a local estimate.
_NO_COUNT_TOKENS = frozenset({404, 405, 501})
CLIENT_CLOSED = 499


@dataclass(slots=True)
class CallRecord:
    """Everything known about one proxied call; logged (and later metered) at the end."""

    request_id: str
    endpoint: Endpoint
    started: float
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int = 0
    error: str | None = None
    ttft_ms: float | None = None
    principal: Principal | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Handles one proxy endpoint call from request to response."""

    def __init__(
        self,
        directory: KeyDirectory,
        router: Router,
        tokens: TokenCounter,
        max_body_bytes: int,
        access_log: bool,
    ) -> None:
        self._directory = directory
        self._router = router
        self._tokens = tokens
        self._max_body = max_body_bytes
        self._log = logging.getLogger(ACCESS_LOGGER)
        self._access_log = access_log

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one call; every failure becomes an error in the endpoint's dialect."""
        record = CallRecord(new_request_id(), endpoint, time.perf_counter())
        id_header = (b"x-request-id", record.request_id.encode())
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"Use POST for {scope['path']}.")
            headers = header_map(scope)
            record.principal = await self._directory.authenticate(headers)
            body = await read_body(receive, headers, self._max_body)
            payload = parse_object(body)
            info = inspect(endpoint, payload)
            record.model, record.stream = info.model, info.stream
            route = self._router.resolve(info.model)
            record.provider, record.upstream_model = route.provider.name, route.upstream_model
            self.authorize(record.principal, route)
            await self.admit(record.principal, route, info)
            call = self.prepare(endpoint, route, body, payload, info, headers, record.principal)
            await until_disconnect(receive, self.forward(send, route, call, record, id_header))
        except TollwayError as error:
            await self._send_error(send, endpoint, error, record, id_header)
        except ClientDisconnected:
            record.status, record.error = CLIENT_CLOSED, "client_disconnected"
        finally:
            self.meter(record)

    def authorize(self, principal: Principal, route: Route) -> None:
        """May this caller use this model?"""
        key = principal.key
        if key is not None and not key.allows(route.model):
            raise Forbidden(
                f"This API key may not use the model '{route.model}'.",
                param="model",
                code="model_not_allowed",
            )

    async def admit(self, principal: Principal, route: Route, info: RequestInfo) -> None:
        """Reserve budget and rate-limit capacity. (Arrives with metering.)"""

    def prepare(
        self,
        endpoint: Endpoint,
        route: Route,
        body: bytes,
        payload: Payload,
        info: RequestInfo,
        headers: dict[str, str],
        principal: Principal,
    ) -> UpstreamCall:
        """The upstream request: the upstream model id in place of the client's name, and
        the project's own provider credential when it has one."""
        if not route.provider.supports(endpoint) and endpoint is not Endpoint.COUNT_TOKENS:
            raise BadRequest(
                f"The model '{route.model}' is served by provider '{route.provider.name}' "
                f"({route.provider.dialect.value} API), which does not offer the "
                f"{endpoint.dialect.value} endpoint {endpoint.value}.",
                param="model",
            )
        if route.upstream_model != info.model:
            payload["model"] = route.upstream_model
            body = orjson.dumps(payload)
        forwarded = {name: headers[name] for name in _FORWARDED if name in headers}
        credential = principal.key.credentials.get(route.provider.name) if principal.key else None
        return UpstreamCall(endpoint, body, info.stream, forwarded, credential)

    async def forward(
        self,
        send: Send,
        route: Route,
        call: UpstreamCall,
        record: CallRecord,
        id_header: tuple[bytes, bytes],
    ) -> None:
        """Call the provider and relay its answer. (Retries and fallbacks arrive here.)"""
        provider = route.provider
        if call.endpoint is Endpoint.COUNT_TOKENS and not provider.supports(call.endpoint):
            await self._count_locally(send, call, record, id_header)
            return
        upstream = await provider.send(call)
        if upstream.status >= 400:
            body = await upstream.read()
            if call.endpoint is Endpoint.COUNT_TOKENS and upstream.status in _NO_COUNT_TOKENS:
                await self._count_locally(send, call, record, id_header)
                return
            raise provider.error_for(upstream.status, body, upstream.header("retry-after"), call)
        await self._relay(send, upstream, call, record, [id_header])

    async def _relay(
        self,
        send: Send,
        upstream: UpstreamResponse,
        call: UpstreamCall,
        record: CallRecord,
        headers: RawHeaders,
    ) -> None:
        record.status = upstream.status
        if call.stream and upstream.content_type == "text/event-stream":
            outcome = StreamOutcome()
            try:
                await send_stream(send, upstream, headers, call.endpoint.dialect, outcome)
            finally:
                if outcome.first_event_at is not None:
                    record.ttft_ms = (outcome.first_event_at - record.started) * 1000
                if outcome.error is not None:
                    record.error = outcome.error.code
        else:
            await send_whole(send, upstream, headers)

    async def _count_locally(
        self, send: Send, call: UpstreamCall, record: CallRecord, id_header: tuple[bytes, bytes]
    ) -> None:
        payload = orjson.loads(call.body)
        count = self._tokens.count_messages(payload)
        record.status = 200
        record.extra["estimated"] = True
        await send_response(
            send, 200, orjson.dumps({"input_tokens": count}), [JSON_CONTENT_TYPE, id_header]
        )

    def meter(self, record: CallRecord) -> None:
        """Record the call. (Usage and cost arrive with metering; for now, the access log.)"""
        if not self._access_log or not self._log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "endpoint": record.endpoint.value,
            "model": record.model,
            "provider": record.provider,
            "upstream_model": record.upstream_model,
            "stream": record.stream,
            "status": record.status,
            "latency_ms": round((time.perf_counter() - record.started) * 1000, 3),
        }
        if record.ttft_ms is not None:
            fields["ttft_ms"] = round(record.ttft_ms, 3)
        if record.error:
            fields["error"] = record.error
        if record.principal is not None:
            fields["auth"] = record.principal.kind
            if record.principal.key is not None:
                fields["key_id"] = record.principal.key.id
                fields["project_id"] = record.principal.key.project_id
        fields.update(record.extra)
        self._log.info("request", extra={"fields": fields})

    async def _send_error(
        self,
        send: Send,
        endpoint: Endpoint,
        error: TollwayError,
        record: CallRecord,
        id_header: tuple[bytes, bytes],
    ) -> None:
        record.status, record.error = error.status, error.code
        headers: RawHeaders = [JSON_CONTENT_TYPE, id_header]
        headers.extend((k.encode(), v.encode("latin-1")) for k, v in error.headers.items())
        await send_response(send, error.status, render_error(endpoint.dialect, error), headers)
