"""One proxied call as the pipeline's stages fill it in, request to record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tollway.asgi import RawHeaders, Receive, ResponseState, Scope, Send
from tollway.bounds import MAX_ATTEMPTS
from tollway.dialects.endpoints import Endpoint, RequestInfo
from tollway.dialects.validate import Payload
from tollway.errors import InternalError
from tollway.metering.outcome import Admission, Outcome

# The request log keeps this much of a client's User-Agent header.
USER_AGENT_CHARS = 300

if TYPE_CHECKING:
    from tollway.auth.credentials import Principal
    from tollway.cache.service import CachePlan
    from tollway.cache.wire import AnswerRecorder
    from tollway.capture import BodyTap
    from tollway.guards.response import ResponseScreen
    from tollway.guards.runner import ActiveGuards, Decision
    from tollway.routing.router import Plan


@dataclass(slots=True)
class Attempt:
    """One upstream try of a call: the deployment, how it ended, how long it took."""

    provider: str
    model: str  # the upstream model id
    started: float  # time.perf_counter() when the try began
    status: int | None = None  # the upstream's HTTP status, when it answered
    outcome: str | None = None  # None while it runs; then the error code that ended it
    latency_ms: float | None = None

    def fail(self, code: str) -> None:
        """The try ended with the gateway's error ``code`` (the call may go on)."""
        self.outcome = code
        self.latency_ms = _ms_since(self.started)

    def as_record(self) -> dict[str, Any]:
        """As the spend record keeps it."""
        return {
            "provider": self.provider,
            "model": self.model,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": self.latency_ms,
        }


@dataclass(slots=True)
class CallRecord:
    """Everything known about one proxied call, filled in as it runs."""

    request_id: str
    endpoint: Endpoint
    started: float
    started_at: float
    # The ASGI call itself (``send`` adds the response headers below and tracks progress).
    scope: Scope | None = None
    receive: Receive | None = None
    send: Send | None = None
    headers: dict[str, str] = field(default_factory=dict)
    response_headers: RawHeaders = field(default_factory=list)
    # What the stages found out.
    principal: Principal | None = None
    body: bytes = b""
    payload: Payload | None = None
    info: RequestInfo | None = None
    plan: Plan | None = None
    guards: ActiveGuards | None = None
    decisions: list[Decision] = field(default_factory=list)
    screen: ResponseScreen | None = None
    cache: CachePlan | None = None
    cache_recorder: AnswerRecorder | None = None
    cached: bool = False
    admission: Admission | None = None
    # Counted in the key's request_count when its record is stored (keys without
    # max_requests; those with it are counted at authorization).
    count_request: bool = False
    capture: BodyTap | None = None  # the project captures bodies: what was sent back
    # How it went.
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int = 0
    error: str | None = None
    ttft_ms: float | None = None
    strip_usage: bool = False
    output_limit_added: bool = False
    attempts: list[str] = field(default_factory=list)  # failed ones, "provider/model:code"
    # Every upstream try, in order: the failed ones, then the one answering (if any).
    tries: list[Attempt] = field(default_factory=list)
    served: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    response: ResponseState = field(default_factory=ResponseState)
    extra: dict[str, Any] = field(default_factory=dict)
    # The tracing observer's spans of this call between its hooks (never logged).
    trace: Any = None

    def all_decisions(self) -> list[Decision]:
        """The guards' decisions on the request and, once screened, the response."""
        if self.screen is None:
            return self.decisions
        return [*self.decisions, *self.screen.decisions()]

    def intent(self) -> dict[str, Any]:
        """What a crash-recovered record of this call would say (see Meter.intend)."""
        key = self.principal.key if self.principal else None
        return {
            "request_id": self.request_id,
            "started_at": self.started_at,
            "key_id": key.id if key else None,
            "project_id": key.project_id if key else None,
            "endpoint": self.endpoint.value,
            "model": self.model,
            "stream": self.stream,
            "metadata": key.metadata if key else {},
            "count_request": self.count_request,
            "user_agent": self.headers.get("user-agent", "")[:USER_AGENT_CHARS] or None,
        }

    def spend_fields(self) -> dict[str, Any]:
        """The call's spend-record fields known so far (the meter adds usage and cost)."""
        return {
            **self.intent(),
            "provider": self.provider,
            "upstream_model": self.upstream_model,
            # A call always ends with a status: one that never got to answer was cut by
            # a failure the gateway did not foresee.
            "status": self.status or InternalError.status,
            "latency_ms": self._latency_ms(),
            "ttft_ms": round(self.ttft_ms, 3) if self.ttft_ms is not None else None,
            "cached": self.cached,
            "error": self.error,
            "attempts": len(self.attempts) + (1 if self.served else 0),
            "attempt_log": self.attempt_log() or None,
            "guards": [d.as_record() for d in self.all_decisions()] or None,
        }

    def begin_attempt(self, provider: str, model: str) -> None:
        """An upstream try of ``model`` on ``provider`` starts now."""
        self.tries.append(Attempt(provider, model, time.perf_counter()))

    def attempt_log(self) -> list[dict[str, Any]]:
        """The tries counted in ``attempts``, in order: each failed one with its error
        code, then the one that answered ("ok", or the error that cut its stream) timed
        until now. A try that neither failed nor answered (counted locally) is left out."""
        log = []
        for attempt in self.tries[:MAX_ATTEMPTS]:
            entry = attempt.as_record()
            if attempt.outcome is None:
                if not self.served:
                    continue
                entry["outcome"] = self.error or "ok"
                entry["status"] = self.status or attempt.status
                entry["latency_ms"] = _ms_since(attempt.started)
            log.append(entry)
        return log

    def log_fields(self) -> dict[str, Any]:
        """The call's access-log line."""
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "endpoint": self.endpoint.value,
            "model": self.model,
            "provider": self.provider,
            "upstream_model": self.upstream_model,
            "stream": self.stream,
            "status": self.status,
            "latency_ms": self._latency_ms(),
        }
        if self.ttft_ms is not None:
            fields["ttft_ms"] = round(self.ttft_ms, 3)
        if self.error:
            fields["error"] = self.error
        if self.attempts:
            fields["failed_attempts"] = self.attempts
        if self.cached:
            fields["cached"] = True
        decisions = self.all_decisions()
        if decisions:
            fields["guards"] = [d.as_record() for d in decisions]
        usage = self.outcome.usage
        if usage is not None and usage.total_tokens:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
        if self.outcome.journaled:
            fields["cost_usd"] = str(self.outcome.cost) if self.outcome.priced else None
        if self.principal is not None:
            fields["auth"] = self.principal.kind
            if self.principal.key is not None:
                fields["key_id"] = self.principal.key.id
                fields["project_id"] = self.principal.key.project_id
        fields.update(self.extra)
        return fields

    def _latency_ms(self) -> float:
        return _ms_since(self.started)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
