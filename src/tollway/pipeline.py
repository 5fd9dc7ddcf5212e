"""The proxy path, top to bottom.

    authenticate -> read and check the body -> route -> authorize -> admit (budgets,
    limits) -> prepare the upstream request -> call upstream -> relay the response
    -> record spend -> settle and log

Each step is one named call so later concerns (retries and fallbacks, translation,
guards) slot into their own step without reshaping the path.
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
from tollway.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    TollwayError,
    UpstreamError,
)
from tollway.metering.meter import Admission, Meter, Outcome
from tollway.metering.stream_meter import StreamMeter
from tollway.metering.tokens import TokenCounter
from tollway.metering.usage import from_body
from tollway.providers.base import UpstreamCall
from tollway.relay import StreamOutcome, read_whole, send_stream, send_whole, until_disconnect
from tollway.routing.router import Route, Router
from tollway.settings import Dialect
from tollway.telemetry.logs import ACCESS_LOGGER

# Client headers a provider may forward upstream; everything else stays here.
_FORWARDED = ("anthropic-version", "anthropic-beta")
# Statuses meaning "this upstream has no count_tokens": answer with a local estimate.
_NO_COUNT_TOKENS = frozenset({404, 405, 501})
# OpenAI-dialect streams that report usage only when asked (stream_options.include_usage).
_USAGE_ON_REQUEST = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS})
CLIENT_CLOSED = 499
COST_HEADER = "x-tollway-cost-usd"


@dataclass(slots=True)
class CallRecord:
    """Everything known about one proxied call, filled in as it runs."""

    request_id: str
    endpoint: Endpoint
    started: float
    started_at: float
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int = 0
    error: str | None = None
    ttft_ms: float | None = None
    principal: Principal | None = None
    payload: Payload | None = None
    admission: Admission | None = None
    strip_usage: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    extra: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Handles one proxy endpoint call from request to response."""

    def __init__(
        self,
        directory: KeyDirectory,
        router: Router,
        meter: Meter,
        tokens: TokenCounter,
        max_body_bytes: int,
        access_log: bool,
    ) -> None:
        self._directory = directory
        self._router = router
        self._meter = meter
        self._tokens = tokens
        self._max_body = max_body_bytes
        self._log = logging.getLogger(ACCESS_LOGGER)
        self._access_log = access_log

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one call; every failure becomes an error in the endpoint's dialect."""
        record = CallRecord(new_request_id(), endpoint, time.perf_counter(), time.time())
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"Use POST for {scope['path']}.", headers={"allow": "POST"})
            headers = header_map(scope)
            record.principal = await self._directory.authenticate(headers)
            body = await read_body(receive, headers, self._max_body)
            record.payload = payload = parse_object(body)
            info = inspect(endpoint, payload)
            record.model, record.stream = info.model, info.stream
            route = self._router.resolve(info.model)
            record.provider, record.upstream_model = route.provider.name, route.upstream_model
            self.authorize(record.principal, route)
            record.admission = await self._meter.admit(
                record.principal, route, endpoint, payload, info
            )
            call = self.prepare(endpoint, route, body, payload, info, headers, record)
            await until_disconnect(receive, self.forward(send, route, call, record))
        except TollwayError as error:
            await self._send_error(send, endpoint, error, record)
        except ClientDisconnected:
            record.status, record.error = CLIENT_CLOSED, "client_disconnected"
        finally:
            if record.principal is not None:
                await self.record_spend(record)
                await self._meter.release(record.outcome, record.admission)
            self.log(record)

    def authorize(self, principal: Principal, route: Route) -> None:
        """May this caller use this model?"""
        key = principal.key
        if key is not None and not key.allows(route.model):
            raise Forbidden(
                f"This API key may not use the model '{route.model}'.",
                param="model",
                code="model_not_allowed",
            )

    def prepare(
        self,
        endpoint: Endpoint,
        route: Route,
        body: bytes,
        payload: Payload,
        info: RequestInfo,
        headers: dict[str, str],
        record: CallRecord,
    ) -> UpstreamCall:
        """The upstream request: the upstream model id in place of the client's name, usage
        reporting switched on for streams, and the project's own credential if it has one."""
        provider = route.provider
        if not provider.supports(endpoint) and endpoint is not Endpoint.COUNT_TOKENS:
            raise BadRequest(
                f"The model '{route.model}' is served by provider '{provider.name}' "
                f"({provider.dialect.value} API), which does not offer the "
                f"{endpoint.dialect.value} endpoint {endpoint.value}.",
                param="model",
            )
        changed = False
        if route.upstream_model != info.model:
            payload["model"] = route.upstream_model
            changed = True
        if info.stream and endpoint in _USAGE_ON_REQUEST and provider.dialect is Dialect.OPENAI:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                payload["stream_options"] = {**(options or {}), "include_usage": True}
                record.strip_usage = changed = True
        if changed:
            body = orjson.dumps(payload)
        forwarded = {name: headers[name] for name in _FORWARDED if name in headers}
        key = record.principal.key if record.principal else None
        credential = key.credentials.get(provider.name) if key else None
        return UpstreamCall(endpoint, body, info.stream, forwarded, credential)

    async def forward(
        self, send: Send, route: Route, call: UpstreamCall, record: CallRecord
    ) -> None:
        """Call the provider and relay its answer. (Retries and fallbacks arrive here.)"""
        provider = route.provider
        if call.endpoint is Endpoint.COUNT_TOKENS and not provider.supports(call.endpoint):
            await self._count_locally(send, record)
            return
        upstream = await provider.send(call)
        if upstream.status >= 400:
            body = await read_whole(upstream)
            if call.endpoint is Endpoint.COUNT_TOKENS and upstream.status in _NO_COUNT_TOKENS:
                await self._count_locally(send, record)
                return
            raise provider.error_for(upstream.status, body, upstream.header("retry-after"), call)
        record.status = upstream.status
        headers = self._response_headers(record)
        if call.stream and upstream.content_type == "text/event-stream":
            meter = StreamMeter(call.endpoint, record.strip_usage)
            record.outcome.stream = meter
            progress = StreamOutcome()
            try:
                await send_stream(
                    send,
                    upstream,
                    headers,
                    call.endpoint.dialect,
                    meter,
                    progress,
                    lambda: self.record_spend(record),
                )
            finally:
                if progress.first_event_at is not None:
                    record.ttft_ms = (progress.first_event_at - record.started) * 1000
                if progress.error is not None:
                    record.error = progress.error.code
            return
        body = await read_whole(upstream)
        if upstream.content_type != "application/json":
            kind = upstream.content_type or "no content type"
            raise UpstreamError(
                f"Provider '{provider.name}' answered with {kind} instead of JSON; "
                "check its base_url."
            )
        if call.endpoint is not Endpoint.COUNT_TOKENS:
            record.outcome.usage = from_body(body, provider.dialect is Dialect.ANTHROPIC)
        await self.record_spend(record)
        headers.append(self._cost_header(record.outcome))
        content_type = upstream.header("content-type") or "application/json"
        await send_whole(send, upstream.status, body, content_type, headers)

    async def record_spend(self, record: CallRecord) -> None:
        """Journal the call's spend record once (estimating usage after a cut stream)."""
        outcome = record.outcome
        if outcome.journaled:
            return
        await self._meter.fill_estimates(outcome, record.payload)
        key = record.principal.key if record.principal else None
        fields = {
            "request_id": record.request_id,
            "started_at": record.started_at,
            "key_id": key.id if key else None,
            "project_id": key.project_id if key else None,
            "endpoint": record.endpoint.value,
            "model": record.model,
            "provider": record.provider,
            "upstream_model": record.upstream_model,
            "status": record.status,
            "latency_ms": round((time.perf_counter() - record.started) * 1000, 3),
            "ttft_ms": round(record.ttft_ms, 3) if record.ttft_ms is not None else None,
            "stream": record.stream,
            "cached": False,
            "error": record.error,
            "metadata": key.metadata if key else {},
        }
        self._meter.complete(outcome, record.admission, fields, record.endpoint)

    def _response_headers(self, record: CallRecord) -> RawHeaders:
        headers: RawHeaders = [(b"x-request-id", record.request_id.encode())]
        if record.admission is not None:
            headers.extend((k.encode(), v.encode()) for k, v in record.admission.headers.items())
        return headers

    @staticmethod
    def _cost_header(outcome: Outcome) -> tuple[bytes, bytes]:
        if not outcome.priced:
            return (COST_HEADER.encode(), b"unknown")
        return (COST_HEADER.encode(), format(outcome.cost or 0, "f").encode())

    async def _count_locally(self, send: Send, record: CallRecord) -> None:
        count = self._tokens.count_messages(record.payload or {})
        record.status = 200
        record.extra["estimated"] = True
        await self.record_spend(record)
        headers = [JSON_CONTENT_TYPE, *self._response_headers(record)]
        await send_response(send, 200, orjson.dumps({"input_tokens": count}), headers)

    def log(self, record: CallRecord) -> None:
        """One access-log line per call: ids, route, status, timing, tokens, cost."""
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
        usage = record.outcome.usage
        if usage is not None and usage.total_tokens:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
        if record.outcome.journaled:
            fields["cost_usd"] = str(record.outcome.cost) if record.outcome.priced else None
        if record.principal is not None:
            fields["auth"] = record.principal.kind
            if record.principal.key is not None:
                fields["key_id"] = record.principal.key.id
                fields["project_id"] = record.principal.key.project_id
        fields.update(record.extra)
        self._log.info("request", extra={"fields": fields})

    async def _send_error(
        self, send: Send, endpoint: Endpoint, error: TollwayError, record: CallRecord
    ) -> None:
        record.status, record.error = error.status, error.code
        headers: RawHeaders = [JSON_CONTENT_TYPE, (b"x-request-id", record.request_id.encode())]
        headers.extend((k.encode(), v.encode("latin-1")) for k, v in error.headers.items())
        await send_response(send, error.status, render_error(endpoint.dialect, error), headers)
