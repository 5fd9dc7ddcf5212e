"""The response cache's two stages on the proxy path: a lookup that answers the call from
an earlier identical one (replayed whole or as a faithful stream, screened by the
response guards like a fresh answer), and a store that keeps a finished call's answer.

A hit is metered like any call (a spend record with its tokens, marked cached, costing
nothing upstream) before its answer is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tollway.asgi import SSE_HEADERS
from tollway.cache.entry import STREAMED
from tollway.cache.service import CACHE_HEADER, ResponseCache
from tollway.call import CallRecord
from tollway.dialects.endpoints import Endpoint
from tollway.dialects.render import request_id_headers
from tollway.forward import cost_header
from tollway.relay import send_whole


class CacheStages:
    """Lookup and store for one gateway's response cache."""

    def __init__(
        self, cache: ResponseCache, record_spend: Callable[[CallRecord], Awaitable[None]]
    ) -> None:
        self.cache = cache
        self._record_spend = record_spend

    async def lookup(self, record: CallRecord) -> bool:
        """Answer the call from this tenant's cache; False when it is not answered."""
        if record.endpoint is Endpoint.COUNT_TOKENS:
            return False
        assert record.principal is not None and record.payload is not None
        assert record.plan is not None and record.info is not None
        off = record.plan.switched_off()
        if off and len(off) == len(record.plan.deployments):
            return False  # switched off: the call is refused, not answered from memory
        plan = record.cache = self.cache.plan(
            record.principal,
            record.endpoint,
            record.payload,
            record.headers,
            record.plan.config.cache_ttl,
        )
        if plan is None:
            return False
        entry = await self.cache.lookup(plan)
        if entry is not None:
            try:
                if record.stream and entry.endpoint in STREAMED:
                    events = entry.stream(record.payload)
                    body = b""
                else:
                    events, body = [], entry.whole(record.payload)
            except ValueError:
                entry = None  # cannot be replayed for this request: a miss
        if entry is None:
            record.response_headers.append((CACHE_HEADER, b"miss"))
            return False
        record.cached = True
        record.response_headers.append((CACHE_HEADER, b"hit"))
        record.outcome.usage = entry.tokens.usage()
        if record.screen is not None:
            events = record.screen.events(events) + record.screen.close() if events else []
            body = await record.screen.whole_async(body) if body else body
        record.status = entry.status
        await self._record_spend(record)
        headers = [*request_id_headers(record.endpoint.dialect, record.request_id)]
        headers.append(cost_header(record.outcome))
        assert record.send is not None
        send = record.send
        if events:
            start = {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers}
            await send(start)
            for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send_whole(send, entry.status, body, entry.content_type, headers)
        return True

    async def store(self, record: CallRecord) -> None:
        """Keep the answer (delivered by now) for the next identical call."""
        plan, recorder = record.cache, record.cache_recorder
        if plan is None or recorder is None:
            return
        outcome = record.outcome
        if record.error or outcome.earlier:
            return
        usage = outcome.stream.usage if outcome.stream is not None else outcome.usage
        if usage is None or usage.estimated or usage.problem:
            return
        await self.cache.keep(
            plan, recorder, record.endpoint, usage, whole_only=record.output_limit_added
        )
