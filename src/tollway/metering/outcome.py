"""What admission decided for one call, and what the call produced as it ran: the two
records the meter, the forwarder and the pipeline pass between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from tollway.metering.budget import Reservation
from tollway.metering.limits import Limits, Ticket
from tollway.metering.prices import ModelPrice
from tollway.metering.stream_meter import StreamMeter
from tollway.metering.usage import Usage
from tollway.routing.router import Plan


class RateLimiter(Protocol):
    """In-process or Redis rate limits."""

    store: str  # what a failure of the limiter is counted as

    async def acquire(self, scopes: list[Limits]) -> Ticket:
        """Admit or raise RateLimited."""

    async def release(self, ticket: Ticket, tokens: int) -> None:
        """Free the slot and count tokens."""


@dataclass(slots=True)
class Admission:
    """What admission decided for one call."""

    chain: list[Plan] = field(default_factory=list)
    reservation: Reservation | None = None
    ticket: Ticket | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What the call produced, filled in as it runs."""

    usage: Usage | None = None
    price: ModelPrice | None = None
    stream: StreamMeter | None = None
    cost: Decimal | None = None
    priced: bool = True
    journaled: bool = False
    attempted: bool = False  # a request went upstream
    disconnected: bool = False  # the client left before the answer was complete
    flags: set[str] = field(default_factory=set)
    cached: bool = False  # answered from the response cache: no upstream cost
    record: dict[str, Any] | None = None  # the spend record, once journaled
    # Usage of earlier attempts that failed after the upstream reported tokens.
    earlier: list[tuple[Usage, ModelPrice | None]] = field(default_factory=list)

    def set_aside(self) -> None:
        """Keep a failed attempt's usage (it was billed) and start the next one clean."""
        if self.usage is not None and self.usage.total_tokens and not self.usage.problem:
            self.earlier.append((self.usage, self.price))
        self.usage = None
        self.stream = None
