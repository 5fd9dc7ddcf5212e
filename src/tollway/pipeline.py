"""The proxy path, top to bottom.

    authenticate -> read and check the body -> plan the route (model, fallbacks)
    -> authorize -> admit (budgets, limits) -> forward (deployments, retries,
    fallbacks, translation, relay; see forward.py) -> record spend -> settle and log

Each step is one named call so later concerns (guards, caching) slot into their own
step without reshaping the path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tollway.asgi import (
    JSON_CONTENT_TYPE,
    ClientDisconnected,
    RawHeaders,
    Receive,
    ResponseState,
    Scope,
    Send,
    header_map,
    new_request_id,
    read_body,
    send_response,
    tracking,
)
from tollway.auth.credentials import Principal
from tollway.auth.directory import KeyDirectory
from tollway.config import RetryConfig
from tollway.dialects.endpoints import Endpoint, inspect
from tollway.dialects.render import render_error, request_id_headers
from tollway.dialects.validate import Payload, parse_object
from tollway.errors import (
    Forbidden,
    InternalError,
    MethodNotAllowed,
    TollwayError,
)
from tollway.forward import Forwarder
from tollway.metering.meter import Admission, Meter, Outcome
from tollway.relay import until_disconnect
from tollway.routing.router import Router
from tollway.telemetry.logs import ACCESS_LOGGER

CLIENT_CLOSED = 499
log = logging.getLogger("tollway.pipeline")


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
    body: bytes = b""
    admission: Admission | None = None
    strip_usage: bool = False
    attempts: list[str] = field(default_factory=list)  # failed ones, "provider/model:code"
    served: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    response: ResponseState = field(default_factory=ResponseState)
    extra: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Handles one proxy endpoint call from request to response."""

    def __init__(
        self,
        directory: KeyDirectory,
        router: Router,
        meter: Meter,
        retry: RetryConfig,
        max_body_bytes: int,
        body_timeout: float,
        access_log: bool,
    ) -> None:
        self._directory = directory
        self._router = router
        self._meter = meter
        self._forwarder = Forwarder(router, meter, retry, self.record_spend)
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout
        self._log = logging.getLogger(ACCESS_LOGGER)
        self._access_log = access_log

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one call; every failure becomes an error in the endpoint's dialect, and
        every call that got past authentication leaves exactly one spend record."""
        record = CallRecord(new_request_id(), endpoint, time.perf_counter(), time.time())
        send = tracking(send, record.response)
        try:
            await self._serve(endpoint, scope, receive, send, record)
        except TollwayError as error:
            await self._fail(send, endpoint, error, record)
        except ClientDisconnected:
            if not record.response.delivered:
                record.status, record.error = CLIENT_CLOSED, "client_disconnected"
                record.outcome.disconnected = True
        except asyncio.CancelledError:
            # The server is stopping under this call.
            record.status, record.error = record.status or 503, "cancelled"
            raise
        except Exception:  # the edge: a bug must still answer in dialect and be metered
            log.exception("unexpected error", extra={"fields": {"request_id": record.request_id}})
            await self._fail(send, endpoint, _internal(record.request_id), record)
        finally:
            await self._close(record)

    async def _serve(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, record: CallRecord
    ) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"Use POST for {scope['path']}.", headers={"allow": "POST"})
        headers = header_map(scope)
        record.principal = await self._directory.authenticate(headers)
        body = await read_body(receive, headers, self._max_body, self._body_timeout)
        record.payload = payload = parse_object(body)
        record.body = body
        info = inspect(endpoint, payload)
        record.model, record.stream = info.model, info.stream
        plan = self._router.resolve(info.model)
        self.authorize(record.principal, plan.model)
        await self._directory.consume(record.principal)
        record.admission = await self._meter.admit(
            record.principal,
            self._router.chain(plan),
            self._router.context_chain(plan),
            endpoint,
            payload,
            info,
            body,
            record.request_id,
        )
        self._meter.intend(self._intent(record), record.admission, len(body))
        chain = record.admission.chain
        await until_disconnect(
            receive,
            record.response,
            lambda: self._forwarder.run(send, chain, record, info, headers),
        )

    async def _close(self, record: CallRecord) -> None:
        """Journal the spend record, settle the call's holds, log it; never raises."""
        try:
            if record.principal is not None:
                await self.record_spend(record)
                await self._meter.release(record.outcome, record.admission)
        except Exception:  # the edge: the response is out; the failure is logged
            log.exception(
                "settling a call failed", extra={"fields": {"request_id": record.request_id}}
            )
        self.log(record)

    def authorize(self, principal: Principal, model: str) -> None:
        """May this caller use this model? (Fallbacks the operator configured may serve
        it; the key's scope is about what the client asks for.)"""
        key = principal.key
        if key is not None and not key.allows(model):
            raise Forbidden(
                f"This API key may not use the model '{model}'.",
                param="model",
                code="model_not_allowed",
            )

    async def record_spend(self, record: CallRecord) -> None:
        """Journal the call's spend record once (estimating usage after a cut stream) and
        settle its budget hold and limits, before the client sees the response end, so the
        next call already sees this one's cost and tokens."""
        outcome = record.outcome
        if outcome.journaled:
            return
        await self._meter.fill_estimates(outcome, record.payload, record.provider)
        fields = self._fields(record)
        self._meter.complete(outcome, record.admission, fields, record.endpoint)
        await self._meter.release(outcome, record.admission)

    @staticmethod
    def _intent(record: CallRecord) -> dict[str, Any]:
        """What a crash-recovered record of this call would say (see Meter.intend)."""
        key = record.principal.key if record.principal else None
        return {
            "request_id": record.request_id,
            "started_at": record.started_at,
            "key_id": key.id if key else None,
            "project_id": key.project_id if key else None,
            "endpoint": record.endpoint.value,
            "model": record.model,
            "stream": record.stream,
            "metadata": key.metadata if key else {},
        }

    @classmethod
    def _fields(cls, record: CallRecord) -> dict[str, Any]:
        """The call's spend-record fields known so far."""
        return {
            **cls._intent(record),
            "provider": record.provider,
            "upstream_model": record.upstream_model,
            # A call always ends with a status: one that never got to answer was cut by
            # a failure the gateway did not foresee.
            "status": record.status or InternalError.status,
            "latency_ms": round((time.perf_counter() - record.started) * 1000, 3),
            "ttft_ms": round(record.ttft_ms, 3) if record.ttft_ms is not None else None,
            "cached": False,
            "error": record.error,
            "attempts": len(record.attempts) + (1 if record.served else 0),
        }

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
        if record.attempts:
            fields["failed_attempts"] = record.attempts
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

    async def _fail(
        self, send: Send, endpoint: Endpoint, error: TollwayError, record: CallRecord
    ) -> None:
        """Answer with ``error`` in the endpoint's dialect; if the response has already
        started, end it instead (its status line is out)."""
        record.error = error.code
        if record.response.started:
            if not record.response.done:
                await send({"type": "http.response.body", "body": b""})
            return
        record.status = error.status
        headers: RawHeaders = [
            JSON_CONTENT_TYPE,
            *request_id_headers(endpoint.dialect, record.request_id),
        ]
        headers.extend((k.encode(), v.encode("latin-1")) for k, v in error.headers.items())
        await send_response(send, error.status, render_error(endpoint.dialect, error), headers)


def _internal(request_id: str) -> InternalError:
    return InternalError(f"The gateway failed unexpectedly (request {request_id}).")
