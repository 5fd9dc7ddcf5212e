"""Event sinks: where exported events go (a file, webhooks, a Redis stream, a plugin's).

A sink never sees the request path. Events are appended to the durable outbox
(``tollway.events.outbox``) and a dispatcher per sink hands them over in order, in
batches, off the request path: ``send`` may take its time, and what it fails to deliver
is retried with exponential backoff, then dead-lettered after ``max_attempts`` tries
(never, when that is unset: the events wait in the outbox until the sink takes them).

Sinks are plugins (entry-point group ``tollway.sinks``); the built-ins ``file``,
``webhook`` and ``redis_stream`` are registered the same way. A third-party sink:

    class KafkaSink(Sink):
        async def start(self) -> None: ...                # connect
        async def send(self, events: Sequence[Event]) -> list[Failure]:
            ...                                           # deliver; return what failed
        async def aclose(self) -> None: ...               # disconnect

    [project.entry-points."tollway.sinks"]
    kafka = "my_package.sinks:KafkaSink"

configured as ``events: {sinks: [{type: kafka, name: audit-bus, ...its options}]}``.
Every sink also takes the delivery options in ``Delivery`` (its ``name`` comes from the
configuration; it names the sink's place in the outbox, so keep it stable).
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SINK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a sink receives it: its id, type, and the exact JSON text
    ``{"id", "type", "created_at", "data"}`` (what a webhook signs and posts)."""

    id: str
    type: str
    raw: bytes

    def decoded(self) -> dict[str, Any]:
        """The event as a dict."""
        value: dict[str, Any] = orjson.loads(self.raw)
        return value


# An event a sink could not deliver this time, and why.
Failure = tuple[Event, str]


class Delivery(BaseModel):
    """How the dispatcher treats a sink: which events, how many at once, how retried."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(description="Stable and unique: the sink's cursor in the outbox.")
    events: tuple[str, ...] = Field(("*",), description="Event types or globs (key.*).")
    batch_size: int = Field(100, ge=1, le=10_000)
    max_attempts: int | None = Field(None, ge=1, description="Then dead-lettered; None: never.")
    backoff_seconds: float = Field(1.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(300.0, gt=0, le=86_400)

    @field_validator("name")
    @classmethod
    def _file_safe(cls, value: str) -> str:
        if not SINK_NAME.match(value):
            raise ValueError("1 to 64 of letters, digits, '_', '.', '-'")
        return value


class Sink(ABC):
    """Delivers batches of events somewhere; built from its options at startup."""

    # Delivery options this kind of sink defaults to (the configuration may override).
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        self.plugin = type(self).__name__  # the gateway sets its entry-point name
        try:
            self.delivery = Delivery.model_validate({**self.defaults, **self.options})
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ValueError(f"{where}: {problem['msg']}") from None

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.delivery.name

    def wants(self, event_type: str) -> bool:
        """Whether this sink takes events of ``event_type``."""
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.delivery.events)

    async def start(self) -> None:
        """Connect (called once the event loop runs, before the first ``send``)."""
        return None

    @abstractmethod
    async def send(self, events: Sequence[Event]) -> list[Failure]:
        """Deliver ``events``; return the ones that failed (an exception fails them
        all). Delivery is at least once: a retried event may arrive twice."""

    async def aclose(self) -> None:
        """Disconnect."""
        return None
