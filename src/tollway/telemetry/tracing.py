"""OpenTelemetry traces: a server span per proxied call, a client span per upstream try.

    client traceparent ──> "chat gpt-4o"             SERVER  the call as the client saw it
                             ├── "chat gpt-4o-2024-08-06"  CLIENT  try 1: error.type set
                             └── "chat gpt-4o-2024-08-06"  CLIENT  try 2 ──traceparent──> upstream

Names and attributes follow the GenAI semantic conventions
(https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/): the operation, the
requested and the answering model, the provider, token usage, finish reasons,
``error.type``; ``tollway.*`` attributes add the request id, the key and project ids,
the cache, the cost and the attempts. Never a prompt, a completion or a key.

A client's ``traceparent``/``tracestate`` become the parent of the call's span, and each
try sends its own span's context upstream (``UpstreamCall.trace_headers``). Spans are
exported in batches over OTLP/HTTP from the SDK's own thread; ``aclose`` flushes them.
The spans live on the SDK's own ``TracerProvider``, never the global one (which other
libraries read). This module, and with it the SDK, is imported only when tracing is
configured (``Gateway._observers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from tollway import __version__
from tollway.asgi import Message, Send
from tollway.config import TelemetryConfig
from tollway.dialects.endpoints import Endpoint
from tollway.metering.usage import Usage
from tollway.telemetry.observer import Observer
from tollway.telemetry.tracing_answer import Answer

if TYPE_CHECKING:
    from tollway.call import CallRecord
    from tollway.providers.base import Provider
    from tollway.routing.deployment import Deployment
    from tollway.routing.router import Route

Attributes = dict[str, AttributeValue]

# gen_ai.operation.name of each endpoint (count_tokens has no convention of its own).
OPERATIONS: dict[Endpoint, str] = {
    Endpoint.CHAT_COMPLETIONS: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.RESPONSES: "chat",
    Endpoint.MESSAGES: "chat",
    Endpoint.COUNT_TOKENS: "count_tokens",
    Endpoint.GENERATE_CONTENT: "generate_content",
    Endpoint.CONVERSE: "chat",
}
# gen_ai.provider.name of the provider types that have a well-known value; any other
# type (a self-hosted server, a plugin) is named by its type.
PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
# A tracestate longer than this is dropped (W3C: 32 members; 512 characters must pass).
MAX_TRACESTATE = 4096
EXPORT_TIMEOUT_SECONDS = 10.0


@dataclass(slots=True)
class CallTrace:
    """One call's spans between the hooks (``CallRecord.trace``)."""

    server: Span
    parent: Context  # the server span, as the parent of each try's span
    answer: Answer
    attempt: Span | None = None
    attempts: int = 0
    provider: str | None = None  # gen_ai.provider.name of the latest try


class Tracing(Observer):
    """Traces every proxied call and exports the spans over OTLP/HTTP."""

    def __init__(self, config: TelemetryConfig) -> None:
        assert config.traces_url is not None
        self.config = config
        resource = Resource.create(
            {
                **config.resource_attributes,
                "service.name": config.service_name,
                "service.version": __version__,
            }
        )
        # A client's sampling decision (its traceparent's flag) stands; new traces are
        # recorded at the configured ratio.
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        self.provider = TracerProvider(sampler=sampler, resource=resource, shutdown_on_exit=False)
        self._tracer = self.provider.get_tracer("tollway", __version__)
        self._propagator = TraceContextTextMapPropagator()
        self._deployments: dict[Deployment, Attributes] = {}

    async def start(self) -> None:
        """Start the exporter's batching thread."""
        exporter = OTLPSpanExporter(
            endpoint=self.config.traces_url,
            headers={name: value.get_secret_value() for name, value in self.config.headers.items()},
            timeout=EXPORT_TIMEOUT_SECONDS,
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))

    async def aclose(self) -> None:
        """Export what is queued, then stop (the SDK blocks: off the event loop)."""
        await asyncio.to_thread(self._flush_and_stop)

    def _flush_and_stop(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()

    # -- the hooks ----------------------------------------------------------------------

    def call_started(self, record: CallRecord) -> None:
        """Open the call's server span, under the client's trace context if it sent one."""
        scope = record.scope or {}
        attributes: Attributes = {
            "gen_ai.operation.name": OPERATIONS[record.endpoint],
            "url.path": scope.get("path", ""),
            "tollway.request_id": record.request_id,
        }
        span = self._tracer.start_span(
            OPERATIONS[record.endpoint],
            context=self._client_context(scope.get("headers", ())),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        answer = Answer()
        record.trace = CallTrace(span, set_span_in_context(span, Context()), answer)
        if record.send is not None and span.is_recording():
            record.send = _watching(record.send, answer)

    def attempt_started(self, record: CallRecord, route: Route) -> dict[str, str]:
        """Open the try's client span; its context is what goes upstream."""
        trace = record.trace
        if not isinstance(trace, CallTrace):
            return {}
        trace.attempts += 1
        static = self._deployments.get(route.deployment)
        if static is None:
            static = self._deployments[route.deployment] = _deployment_attributes(route)
        operation = OPERATIONS[record.endpoint]
        attributes: Attributes = {
            **static,
            "gen_ai.operation.name": operation,
            "tollway.attempt": trace.attempts,
        }
        trace.provider = str(static["gen_ai.provider.name"])
        if trace.attempt is not None:  # a try that never reported its end
            trace.attempt.end()
        trace.attempt = span = self._tracer.start_span(
            f"{operation} {route.upstream_model}",
            context=trace.parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        headers: dict[str, str] = {}
        self._propagator.inject(headers, context=set_span_in_context(span, Context()))
        return headers

    def attempt_finished(
        self, record: CallRecord, route: Route, error: str | None, seconds: float
    ) -> None:
        """Close the try's span: the upstream's status, usage and answer, or the error."""
        trace = record.trace
        if not isinstance(trace, CallTrace) or trace.attempt is None:
            return
        span, trace.attempt = trace.attempt, None
        if span.is_recording():
            attributes: Attributes = {}
            if record.served and record.status:
                attributes["http.response.status_code"] = record.status
            if error is None:
                outcome = record.outcome
                usage = outcome.stream.usage if outcome.stream is not None else outcome.usage
                attributes.update(_usage_attributes(usage))
                attributes.update(_answer_attributes(trace.answer))
            else:
                attributes["error.type"] = error
                span.set_status(Status(StatusCode.ERROR, error))
            span.set_attributes(attributes)
        span.end()

    def call_finished(self, record: CallRecord) -> None:
        """Name the call's span after its model, give it the outcome, and end it."""
        trace = record.trace
        if not isinstance(trace, CallTrace):
            return
        record.trace = None
        if trace.attempt is not None:
            trace.attempt.set_status(Status(StatusCode.ERROR, "aborted"))
            trace.attempt.end()
        span = trace.server
        if span.is_recording():
            operation = OPERATIONS[record.endpoint]
            span.update_name(f"{operation} {record.model}" if record.model else operation)
            span.set_attributes(_call_attributes(record, trace))
            error = _error_type(record)
            if error is not None:
                span.set_attribute("error.type", error)
                # An HTTP server's 4xx is the client's failure, not this span's
                # (https://opentelemetry.io/docs/specs/semconv/http/http-spans/#status);
                # an answer that broke after a 2xx started is.
                if record.status >= 500 or record.status < 400:
                    span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    # -- helpers --------------------------------------------------------------------------

    def _client_context(self, raw: Iterable[Sequence[bytes]]) -> Context:
        """The client's W3C trace context (``traceparent``, ``tracestate``), or a new root."""
        carrier: dict[str, str] = {}
        for name, value in raw:
            if name in (b"traceparent", b"tracestate") and len(value) <= MAX_TRACESTATE:
                key = name.decode("ascii")
                text = value.decode("latin-1")
                carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
        if "traceparent" not in carrier:
            return Context()
        return self._propagator.extract(carrier, Context())


def _watching(send: Send, answer: Answer) -> Send:
    """``send`` that shows each body chunk to ``answer`` on its way to the client."""

    async def watched(message: Message) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body")
            if isinstance(body, bytes) and body:
                answer.see(body)
        await send(message)

    return watched


def _deployment_attributes(route: Route) -> Attributes:
    """What every try at this deployment says about where it went."""
    provider: Provider = route.provider
    kind = provider.config.type
    url = urlsplit(provider.base_url)
    attributes: Attributes = {
        "gen_ai.provider.name": PROVIDER_NAMES.get(kind, kind),
        "gen_ai.request.model": route.upstream_model,
        "tollway.deployment": route.deployment.label,  # provider/model
    }
    if url.hostname:
        attributes["server.address"] = url.hostname
        attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    return attributes


def _call_attributes(record: CallRecord, trace: CallTrace) -> Attributes:
    """The outcome of the whole call: what was asked, who answered, what it cost."""
    attributes: Attributes = {
        "tollway.cached": record.cached,
        "tollway.attempts": trace.attempts,
        "gen_ai.request.stream": record.stream,
    }
    if record.status:
        attributes["http.response.status_code"] = record.status
    if record.model is not None:
        attributes["gen_ai.request.model"] = record.model
    if trace.provider is not None and not record.cached:
        attributes["gen_ai.provider.name"] = trace.provider
    if record.provider is not None:
        attributes["tollway.provider"] = record.provider
    key = record.principal.key if record.principal is not None else None
    if key is not None:
        attributes["tollway.key_id"] = key.id
        attributes["tollway.project_id"] = key.project_id
    if record.ttft_ms is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000
    outcome = record.outcome
    if outcome.journaled:
        if outcome.priced:
            attributes["tollway.cost_usd"] = float(outcome.cost or Decimal(0))
        else:
            attributes["tollway.unpriced"] = True  # no price known: the cost is not 0
    attributes.update(_usage_attributes(outcome.usage))
    attributes.update(_answer_attributes(trace.answer))
    return attributes


def _usage_attributes(usage: Usage | None) -> Attributes:
    """Token counts (input counts every input token, cached ones included)."""
    if usage is None or (usage.total_tokens == 0 and not usage.estimated):
        return {}
    attributes: Attributes = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cache_read_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    if usage.estimated:
        attributes["tollway.usage_estimated"] = True
    return attributes


def _answer_attributes(answer: Answer) -> Attributes:
    attributes: Attributes = {}
    if answer.model is not None:
        attributes["gen_ai.response.model"] = answer.model
    if answer.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(answer.finish_reasons)
    return attributes


def _error_type(record: CallRecord) -> str | None:
    """``error.type``: the call's error code, else its HTTP status when that failed."""
    if record.error:
        return record.error
    if record.status >= 400 or record.status == 0:
        return str(record.status or 500)
    return None
