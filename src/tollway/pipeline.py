"""The proxy path, top to bottom, as named stages (``Pipeline.stages``).

    authenticate   the caller's key; the proxy's kill switch; a browser's origin
    read           the body, bounded in size and time
    capture        keep the bodies of this call, when its project captures them
    validate       parse and check it for the endpoint
    route          the model's plan: deployments, fallbacks
    authorize      may this key use this model; count its request
    guard_request  guards block, redact (the payload is rewritten) or flag
    rate_limit     rpm, tpm, max_parallel (a cache hit is a request too)
    cache_lookup   an exact earlier answer in this tenant's cache answers the call
    admit          budgets (held)
    forward        deployments, retries, fallbacks, translation, relay (forward.py), with
                   the answer screened on its way (guard response, guards/response.py)
    cache_store    a complete good answer is kept for the next identical call
  and, whatever happened, ``_close``: meter (the spend record, settled) and log.

Each stage reads and fills the ``CallRecord``; a stage that answers the call itself (a
cache hit) returns ``ANSWERED`` and the rest are skipped. The forwarded body is always
built from ``record.payload``, so a stage that changes the payload changes what goes
upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

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
    tracking,
)
from tollway.auth.directory import KeyDirectory
from tollway.cache.service import ResponseCache
from tollway.cache.stages import CacheStages
from tollway.call import CallRecord
from tollway.capture import Capture
from tollway.config import RetryConfig
from tollway.cors import Cors, call_headers
from tollway.dialects.endpoints import Endpoint, inspect
from tollway.dialects.render import render_error, request_id_headers
from tollway.dialects.validate import parse_object
from tollway.errors import (
    Forbidden,
    InternalError,
    MethodNotAllowed,
    PaymentRequired,
    RateLimited,
    ServiceUnavailable,
    TollwayError,
)
from tollway.forward import Forwarder
from tollway.guards.response import SCREENED, ResponseScreen
from tollway.guards.runner import GuardBlocked, Guards
from tollway.metering.meter import Meter
from tollway.metering.records import utc_iso
from tollway.relay import until_disconnect
from tollway.routing.router import Router
from tollway.switches import SwitchBoard
from tollway.telemetry.logs import ACCESS_LOGGER
from tollway.telemetry.observer import Observer
from tollway.translate.registry import Translations

CLIENT_CLOSED = 499
log = logging.getLogger("tollway.pipeline")
ANSWERED = True  # a stage's return: the call is answered, skip the rest
Stage = Callable[[CallRecord], Awaitable[bool | None]]


class Pipeline:
    """Handles one proxy endpoint call from request to response."""

    def __init__(
        self,
        directory: KeyDirectory,
        router: Router,
        meter: Meter,
        retry: RetryConfig,
        translations: Translations,
        switches: SwitchBoard,
        guards: Guards,
        cache: ResponseCache | None,
        cors: Cors,
        observer: Observer,
        max_body_bytes: int,
        body_timeout: float,
        access_log: bool,
    ) -> None:
        self._directory = directory
        self._router = router
        self._meter = meter
        self._switches = switches
        self._guards = guards
        self._cached = CacheStages(cache, self.record_spend) if cache is not None else None
        self._cors = cors
        self._observer = observer
        self._forwarder = Forwarder(router, meter, retry, translations, self.record_spend, observer)
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout
        self._log = logging.getLogger(ACCESS_LOGGER)
        self._access_log = access_log
        self._capture = Capture()
        self.stages: tuple[Stage, ...] = (
            self.authenticate,
            self.read,
            self.capture,
            self.validate,
            self.route,
            self.authorize,
            self.guard_request,
            self.rate_limit,
            self.cache_lookup,
            self.admit,
            self.forward,
            self.cache_store,
        )

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one call; every failure becomes an error in the endpoint's dialect, and
        every call that got past authentication leaves exactly one spend record."""
        record = CallRecord(new_request_id(), endpoint, time.perf_counter(), time.time())
        record.scope, record.receive = scope, receive
        record.send = tracking(send, record.response, record.response_headers)
        self._observer.call_started(record)
        try:
            if scope["method"] == "OPTIONS":
                await self._preflight(record)
                return
            for stage in self.stages:
                if await stage(record) is ANSWERED:
                    break
        except TollwayError as error:
            await self._fail(error, record)
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
            await self._fail(_internal(record.request_id), record)
        finally:
            await self._close(record)

    # -- the stages, in order ---------------------------------------------------------

    async def authenticate(self, record: CallRecord) -> None:
        """Who is calling; refused while the proxy is switched off, and for a browser
        origin the key's project does not allow."""
        assert record.scope is not None
        if record.scope["method"] != "POST":
            raise MethodNotAllowed(
                f"Use POST for {record.scope['path']}.", headers={"allow": "POST, OPTIONS"}
            )
        record.headers = headers = header_map(record.scope)
        epochs = await self._directory.epochs()
        record.principal = await self._directory.authenticate(headers, epochs)
        await self._switches.refresh_if_changed(epochs.switches)
        if not self._switches.proxy_on():
            raise ServiceUnavailable(
                "The gateway is switched off by an operator; try again later.",
                code="switched_off",
                retry_after=30,
            )
        origin = headers.get("origin")
        if origin is not None:
            record.response_headers.extend(call_headers(record.principal, origin))

    async def read(self, record: CallRecord) -> None:
        """The body, within the size limit and the time limit."""
        assert record.receive is not None
        record.body = await read_body(
            record.receive, record.headers, self._max_body, self._body_timeout
        )

    async def capture(self, record: CallRecord) -> None:
        """Tap what the client will receive, when the key's project captures bodies."""
        self._capture.tap(record)

    async def validate(self, record: CallRecord) -> None:
        """A JSON object of the endpoint's shape; what the gateway needs from it."""
        record.payload = payload = parse_object(record.body)
        record.info = info = inspect(record.endpoint, payload)
        record.model, record.stream = info.model, info.stream

    async def route(self, record: CallRecord) -> None:
        """The requested model's plan (ModelNotFound for an unknown one)."""
        assert record.info is not None
        record.plan = self._router.resolve(record.info.model)

    async def authorize(self, record: CallRecord) -> None:
        """May this caller use this model? (Fallbacks the operator configured may serve
        it; the key's scope is about what the client asks for.) Counts the request
        against the key's ``max_requests``, or with its spend record when it has none."""
        assert record.principal is not None and record.plan is not None
        key = record.principal.key
        if key is not None and not key.allows(record.plan.model):
            whose = "API key" if key.refused_by(record.plan.model) == "key" else "key's project"
            raise Forbidden(
                f"This {whose} may not use the model '{record.plan.model}'.",
                param="model",
                code="model_not_allowed",
            )
        record.count_request = not await self._directory.consume(record.principal)

    async def guard_request(self, record: CallRecord) -> None:
        """The guards that apply to this caller screen the request: a block ends the
        call (GuardBlocked, its decisions kept in the record), a redaction rewrites the
        payload that will be forwarded. A large body is screened in a worker thread."""
        assert record.principal is not None and record.payload is not None
        guards = record.guards = self._guards.for_call(record.principal)
        if guards is None:
            return
        try:
            decisions = await guards.check(record.endpoint.value, record.payload, len(record.body))
        except GuardBlocked as blocked:
            record.decisions.extend(blocked.decisions)
            raise
        record.decisions.extend(decisions)
        if guards.response and record.endpoint in SCREENED:
            record.screen = ResponseScreen(record.endpoint, guards.response)

    async def cache_lookup(self, record: CallRecord) -> bool | None:
        """Answer from the cache when this tenant already has this exact answer
        (cache/stages.py)."""
        if self._cached is not None and await self._cached.lookup(record):
            return ANSWERED
        return None

    async def rate_limit(self, record: CallRecord) -> None:
        """The caller's rate limits (rpm, tpm, max_parallel), before anything answers."""
        assert record.principal is not None
        try:
            record.admission = await self._meter.limit(record.principal)
        except RateLimited:
            self._observer.refused(record, "rate_limit")
            raise

    async def admit(self, record: CallRecord) -> None:
        """Budgets (a hold of the worst case); journal the intent."""
        assert record.principal is not None and record.plan is not None
        assert record.payload is not None and record.info is not None
        assert record.admission is not None
        plan = record.plan
        try:
            await self._meter.admit(
                record.admission,
                record.principal,
                self._router.chain(plan),
                self._router.context_chain(plan),
                record.endpoint,
                record.payload,
                record.info,
                record.body,
                record.request_id,
            )
        except PaymentRequired:
            self._observer.refused(record, "budget")
            raise
        self._meter.intend(record.intent(), record.admission, len(record.body))

    async def forward(self, record: CallRecord) -> None:
        """Get the call answered (forward.py), while watching for the client leaving."""
        assert record.admission is not None and record.info is not None
        assert record.receive is not None and record.send is not None
        send = record.send
        if record.cache is not None and record.cache.store and self._cached is not None:
            send = record.cache_recorder = self._cached.cache.recorder(send)
        chain, info, headers = record.admission.chain, record.info, record.headers
        await until_disconnect(
            record.receive,
            record.response,
            lambda: self._forwarder.run(send, chain, record, info, headers),
        )

    async def cache_store(self, record: CallRecord) -> None:
        """Keep the answer (delivered by now) for the next identical call."""
        if self._cached is not None:
            await self._cached.store(record)

    # -- after every call ---------------------------------------------------------------

    async def _close(self, record: CallRecord) -> None:
        """Meter and log: journal the spend record (and captured bodies), settle the
        call's holds, write the access log line, tell the observers (metrics, traces,
        events); never raises."""
        try:
            if record.principal is not None:
                await self.record_spend(record)
                await self._meter.release(record.outcome, record.admission)
                bodies = self._capture.bodies(record, utc_iso(record.started_at))
                if bodies is not None:
                    self._meter.recorder.record_bodies(bodies)
        except Exception:  # the edge: the response is out; the failure is logged
            log.exception(
                "settling a call failed", extra={"fields": {"request_id": record.request_id}}
            )
        self.log(record)
        self._observer.call_finished(record)

    async def record_spend(self, record: CallRecord) -> None:
        """Journal the call's spend record once (estimating usage after a cut stream) and
        settle its budget hold and limits, before the client sees the response end, so the
        next call already sees this one's cost and tokens."""
        outcome = record.outcome
        if outcome.journaled:
            return
        outcome.cached = record.cached
        await self._meter.fill_estimates(outcome, record.payload, record.provider)
        self._meter.complete(outcome, record.admission, record.spend_fields(), record.endpoint)
        await self._meter.release(outcome, record.admission)

    async def _preflight(self, record: CallRecord) -> None:
        """A browser's CORS preflight: allowed for an origin some project allows."""
        assert record.scope is not None and record.send is not None
        headers = header_map(record.scope)
        origin = headers.get("origin")
        method = headers.get("access-control-request-method")
        if origin is None or method is None:
            raise MethodNotAllowed(
                f"Use POST for {record.scope['path']}.", headers={"allow": "POST, OPTIONS"}
            )
        answer = await self._cors.preflight(origin, headers)
        if answer is None or method.upper() != "POST":
            raise Forbidden(
                f"Browser calls from origin '{origin[:200]}' are not allowed.",
                code="origin_not_allowed",
            )
        record.status = 204
        await record.send({"type": "http.response.start", "status": 204, "headers": answer})
        await record.send({"type": "http.response.body", "body": b""})

    def log(self, record: CallRecord) -> None:
        """One access-log line per call: ids, route, status, timing, tokens, cost, guards."""
        if self._access_log and self._log.isEnabledFor(logging.INFO):
            self._log.info("request", extra={"fields": record.log_fields()})

    async def _fail(self, error: TollwayError, record: CallRecord) -> None:
        """Answer with ``error`` in the endpoint's dialect; if the response has already
        started, end it instead (its status line is out)."""
        assert record.send is not None
        send = record.send
        record.error = error.code
        if record.response.started:
            if not record.response.done:
                await send({"type": "http.response.body", "body": b""})
            return
        record.status = error.status
        headers: RawHeaders = [
            JSON_CONTENT_TYPE,
            *request_id_headers(record.endpoint.dialect, record.request_id),
        ]
        headers.extend((k.encode(), v.encode("latin-1")) for k, v in error.headers.items())
        await send_response(
            send, error.status, render_error(record.endpoint.dialect, error), headers
        )


def _internal(request_id: str) -> InternalError:
    return InternalError(f"The gateway failed unexpectedly (request {request_id}).")
