"""The ``redis_stream`` sink: each event XADDed to a Redis stream.

The stream is ``<redis_prefix><name>`` on the gateway's ``redis_url``, trimmed to about
``maxlen`` entries (``MAXLEN ~``: Redis trims whole nodes, cheaply). Each entry has the
fields ``id``, ``type`` and ``event`` (the whole event's JSON). A batch goes in one
pipeline; when Redis fails, the batch is sent again until it takes it, so an event may
be added twice: consumers read through a consumer group (``XREADGROUP``, ``XACK``) and
deduplicate by ``id``.

    events:
      redis_stream: events                 # or {stream: events, maxlen: 1000000}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tollway.telemetry.sinks import Event, Failure, Sink

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_TIMEOUT_SECONDS = 5.0


class StreamOptions(BaseModel):
    """The Redis stream sink's own options (the gateway fills in ``url`` and prefixes
    ``stream`` when it builds the configured one)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str = Field(pattern=r"^(redis|rediss|unix)://")
    stream: str = Field(min_length=1, max_length=500)
    maxlen: int = Field(100_000, ge=1)


class RedisStreamSink(Sink):
    """Adds events to a Redis stream."""

    defaults: ClassVar[Mapping[str, Any]] = {"name": "redis_stream", "batch_size": 200}

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.stream = StreamOptions.model_validate(options)
        self._redis: Redis | None = None

    async def start(self) -> None:
        from redis.asyncio import Redis  # only deployments that use it load Redis

        self._redis = Redis.from_url(
            self.stream.url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )

    async def send(self, events: Sequence[Event]) -> list[Failure]:
        assert self._redis is not None, "start() first"
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    self.stream.stream,
                    {"id": event.id, "type": event.type, "event": event.raw},
                    maxlen=self.stream.maxlen,
                    approximate=True,
                )
            await pipe.execute()
        return []

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
