"""Getting one call answered: deployments, retries, fallbacks, translation, relay.

    for each model in [requested, *fallbacks]:
        for each try (first + retries, with backoff, within the deadline):
            choose a deployment (strategy, circuit breakers, its own limits)
            prepare the upstream request (translate if the dialects differ)
            send; on a retryable failure before any byte reached the client, try again

A prompt too long for the model switches to its ``context_fallbacks``. Once a stream has
sent its first byte to the client, nothing is retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import orjson

from tollway.asgi import JSON_CONTENT_TYPE, RawHeaders, Send, send_response
from tollway.bounds import MAX_ATTEMPTS
from tollway.config import RetryConfig
from tollway.dialects.endpoints import Endpoint, RequestInfo
from tollway.dialects.render import request_id_headers
from tollway.errors import (
    ServiceUnavailable,
    TollwayError,
    UpstreamError,
    UpstreamUnavailable,
)
from tollway.metering.meter import Meter
from tollway.metering.outcome import Outcome
from tollway.providers.base import UpstreamCall
from tollway.providers.transport import UpstreamResponse
from tollway.relay import StreamOutcome, read_whole, send_stream, send_whole
from tollway.routing.affinity import affinity_key
from tollway.routing.circuit import CircuitState
from tollway.routing.retry import backoff, retryable, unhealthy
from tollway.routing.router import Plan, Route, Router
from tollway.telemetry.observer import Observer
from tollway.translate.base import Translator
from tollway.translate.registry import Translations
from tollway.upstream_request import UpstreamRequests

if TYPE_CHECKING:
    from tollway.call import CallRecord

# Statuses meaning "this upstream has no count_tokens": answer with a local estimate.
_NO_COUNT_TOKENS = frozenset({404, 405, 501})
COST_HEADER = "x-tollway-cost-usd"

RecordSpend = Callable[["CallRecord"], Awaitable[None]]


def cost_header(outcome: Outcome) -> tuple[bytes, bytes]:
    """``x-tollway-cost-usd``: the metered cost, or ``unknown`` when unpriced."""
    if not outcome.priced:
        return (COST_HEADER.encode(), b"unknown")
    return (COST_HEADER.encode(), format(outcome.cost or 0, "f").encode())


def _require_json(body: bytes, provider: str) -> None:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"Provider '{provider}' answered with a body that is not JSON."
        ) from None


def _unavailable(plan: Plan) -> TollwayError:
    """Why no deployment of ``plan`` can take the call: an operator's switch, or health."""
    off = plan.switched_off()
    if off and len(off) == len(plan.deployments):
        return ServiceUnavailable(
            f"Model '{plan.model}' is switched off by an operator ({', '.join(off[:5])}); "
            "try again later or use another model.",
            code="switched_off",
            retry_after=30,
        )
    return UpstreamUnavailable(
        f"Every deployment of model '{plan.model}' is unavailable right now."
    )


class Forwarder:
    """Runs the attempts of one call until one answers or none is left."""

    def __init__(
        self,
        router: Router,
        meter: Meter,
        retry: RetryConfig,
        translations: Translations,
        record_spend: RecordSpend,
        observer: Observer,
    ) -> None:
        self._router = router
        self._observer = observer
        self._requests = UpstreamRequests(translations, meter)
        self._meter = meter
        self._retry = retry
        self._record_spend = record_spend

    async def run(
        self,
        send: Send,
        chain: list[Plan],
        record: CallRecord,
        info: RequestInfo,
        headers: dict[str, str],
    ) -> None:
        """Answer the call from the first plan that can; raise the last error otherwise.

        Retries back off (honouring the failed deployment's Retry-After) until
        ``retry.deadline``; past it, each remaining fallback model still gets one try.
        """
        deadline = time.monotonic() + self._retry.deadline
        plans = list(chain)
        seen = {plan.model for plan in plans}
        last: TollwayError | None = None
        key_id = record.principal.key_id if record.principal else None
        affinity: str | None = None
        index = 0
        while index < len(plans) and len(record.attempts) < MAX_ATTEMPTS:
            plan = plans[index]
            index += 1
            if affinity is None and plan.affine:
                # One conversation, one deployment: its upstream prompt cache stays warm.
                affinity = affinity_key(record.endpoint, record.payload or {}, key_id)
            tried: set[int] = set()
            failed: tuple[int, TollwayError] | None = None
            for attempt in range(self._retry.attempts + 1):
                if len(record.attempts) >= MAX_ATTEMPTS:
                    break
                route = plan.choose(tried, affinity)
                if route is None:
                    last = _unavailable(plan)
                    break
                if failed is not None:
                    # Wait before trying again; a Retry-After only binds the deployment
                    # that sent it.
                    same = failed[0] == id(route.deployment)
                    delay = backoff(self._retry, attempt - 1, failed[1], honour=same)
                    if time.monotonic() + delay > deadline:
                        break
                    await asyncio.sleep(delay)
                tried.add(id(route.deployment))
                record.begin_attempt(route.provider.name, route.upstream_model)
                try:
                    await self._attempt(send, route, record, info, headers)
                    return
                except TollwayError as error:
                    record.served = False
                    record.attempts.append(f"{route.deployment.label}:{error.code}")
                    record.tries[-1].fail(error.code)
                    record.outcome.set_aside()  # tokens a failed attempt used are billed
                    last = error
                    if error.code == "context_length_exceeded":
                        # Retrying cannot help; a bigger model might. Each model once.
                        extra = [p for p in self._router.context_chain(plan) if p.model not in seen]
                        seen.update(p.model for p in extra)
                        plans[index:index] = extra
                        if not extra:
                            raise
                        break
                    if not retryable(error):
                        raise
                    failed = (id(route.deployment), error)
        raise last or UpstreamUnavailable("No deployment could serve this request.")

    async def _attempt(
        self,
        send: Send,
        route: Route,
        record: CallRecord,
        info: RequestInfo,
        headers: dict[str, str],
    ) -> None:
        call, translator = self._requests.build(route, record, info, headers)
        provider = route.provider
        record.provider, record.upstream_model = provider.name, route.upstream_model
        record.outcome.price = self._meter.price_of(route)
        if call.endpoint is Endpoint.COUNT_TOKENS and not provider.supports(call.endpoint):
            await self._count_locally(send, record)
            return
        call = replace(call, trace_headers=self._observer.attempt_started(record, route))
        breaker = route.deployment.breaker
        was_closed = breaker.state is CircuitState.CLOSED
        started = route.deployment.begin()
        ok, health, code = False, False, None
        try:
            record.outcome.attempted = True
            upstream = await provider.send(call)
            record.tries[-1].status = upstream.status
            if upstream.status >= 400:
                body = await read_whole(upstream)
                if call.endpoint is Endpoint.COUNT_TOKENS and upstream.status in _NO_COUNT_TOKENS:
                    ok = True
                    await self._count_locally(send, record)
                    return
                raise provider.error_for(
                    upstream.status, body, upstream.header("retry-after"), call
                )
            if upstream.status >= 300:
                upstream.abort()
                raise UpstreamError(
                    f"Provider '{provider.name}' answered with a redirect "
                    f"({upstream.status}); check its base_url."
                )
            record.status = upstream.status
            record.served = True  # this attempt answers (recorded before the client sees it)
            response_headers = self._headers(record)
            if call.stream and upstream.content_type in provider.stream_content_types:
                failure = await self._stream(
                    send, route, call, translator, record, upstream, response_headers
                )
                ok, code = failure is None, record.error
                health = failure is not None and unhealthy(failure)
                return
            body = await read_whole(upstream)
            if upstream.content_type != "application/json":
                kind = upstream.content_type or "no content type"
                raise UpstreamError(
                    f"Provider '{provider.name}' answered with {kind} instead of JSON; "
                    "check its base_url."
                )
            if call.endpoint is Endpoint.COUNT_TOKENS:
                _require_json(body, provider.name)
            else:
                usage = provider.usage_from_body(body)
                if usage is None:
                    _require_json(body, provider.name)  # one with usage parsed already
                # No (valid) upstream counts: estimate, flagged, rather than record $0.
                record.outcome.usage = await self._meter.body_usage(
                    provider.name, usage, record.payload, body
                )
            if translator is not None:
                body = self._translate_body(translator, body, provider.name)
            if record.screen is not None:
                body = await record.screen.whole_async(body)
            await self._record_spend(record)
            ok = True
            response_headers.append(cost_header(record.outcome))
            content_type = "application/json" if translator else upstream.header("content-type")
            await send_whole(
                send, upstream.status, body, content_type or "application/json", response_headers
            )
        except TollwayError as error:
            health, code = unhealthy(error), error.code
            raise
        finally:
            route.deployment.end(started, ok, code, health)
            seconds = time.perf_counter() - started
            self._observer.attempt_finished(
                record, route, None if ok else code or "aborted", seconds
            )
            closed = breaker.state is CircuitState.CLOSED
            if closed != was_closed:
                self._observer.circuit_changed(route.deployment.label, not closed)

    async def _stream(
        self,
        send: Send,
        route: Route,
        call: UpstreamCall,
        translator: Translator | None,
        record: CallRecord,
        upstream: UpstreamResponse,
        headers: RawHeaders,
    ) -> TollwayError | None:
        provider = route.provider
        meter = provider.stream_meter(call.endpoint, record.strip_usage)
        record.outcome.stream = meter
        progress = StreamOutcome()
        try:
            await send_stream(
                send,
                upstream,
                provider.stream_events(upstream),
                headers,
                record.endpoint,
                meter,
                translator.stream() if translator is not None else None,
                progress,
                lambda: self._finish_stream(record, progress),
                lambda event: provider.stream_error(event, call),
                record.response,
                record.screen,
            )
        finally:
            self._note_progress(record, progress)
        return progress.error

    @staticmethod
    def _note_progress(record: CallRecord, progress: StreamOutcome) -> None:
        if progress.first_event_at is not None:
            record.ttft_ms = (progress.first_event_at - record.started) * 1000
        if progress.error is not None:
            record.error = progress.error.code

    async def _finish_stream(self, record: CallRecord, progress: StreamOutcome) -> None:
        self._note_progress(record, progress)
        await self._record_spend(record)

    @staticmethod
    def _translate_body(translator: Translator, body: bytes, provider: str) -> bytes:
        try:
            return orjson.dumps(translator.response(orjson.loads(body)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise UpstreamError(
                f"Provider '{provider}' returned a response that could not be translated."
            ) from None

    @staticmethod
    def _headers(record: CallRecord) -> RawHeaders:
        headers = request_id_headers(record.endpoint.dialect, record.request_id)
        if record.admission is not None:
            headers.extend((k.encode(), v.encode()) for k, v in record.admission.headers.items())
        return headers

    async def _count_locally(self, send: Send, record: CallRecord) -> None:
        count = await self._meter.estimate.messages(record.payload or {})
        record.status = 200
        record.extra["estimated"] = True
        await self._record_spend(record)
        headers = [JSON_CONTENT_TYPE, *self._headers(record)]
        await send_response(send, 200, orjson.dumps({"input_tokens": count}), headers)
