"""``/api/v1/events``: the sinks and their dead letters; ``EventLog`` for the management
routes that produce events (keys created and revoked)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError

from tollway.admin.deps import require_role
from tollway.events.service import Events

router = APIRouter(
    prefix="/events", tags=["events"], dependencies=[Depends(require_role("operator"))]
)


def event_log(request: Request) -> Events:
    """The gateway's event export (a no-op when no sink is configured)."""
    events: Events = request.app.state.gateway.events
    return events


EventLog = Annotated[Events, Depends(event_log)]


class SinkPublic(BaseModel):
    """One configured sink."""

    name: str
    type: str
    events: list[str]
    delivered: int  # by this process since it started


class DeadLetter(BaseModel):
    """An event a sink gave up on, with why."""

    sink: str
    failed_at: datetime
    attempts: int
    error: str
    event: dict[str, Any]


class DeadLetterListing(BaseModel):
    """``GET /api/v1/events/dead-letters``."""

    total: int
    file: str  # where they are kept, in the data dir
    data: list[DeadLetter]


@router.get("/sinks", response_model=list[SinkPublic])
async def sinks(events: EventLog) -> list[SinkPublic]:
    """The sinks events are delivered to."""
    return [
        SinkPublic(
            name=dispatcher.sink.name,
            type=dispatcher.sink.plugin,
            events=list(dispatcher.sink.delivery.events),
            delivered=dispatcher.delivered,
        )
        for dispatcher in events.dispatchers
    ]


@router.get("/dead-letters", response_model=DeadLetterListing)
async def dead_letters(
    events: EventLog,
    sink: Annotated[str | None, Query(max_length=64, description="Only this sink.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest first.")] = 100,
) -> DeadLetterListing:
    """Events a sink refused ``max_attempts`` times (kept in the data dir, never lost)."""
    total, entries = events.dead_letters.newest(limit, sink)
    data = []
    for entry in entries:
        try:
            data.append(DeadLetter.model_validate(entry))
        except ValidationError:
            continue  # not written by a sink (an edited file): left out
    return DeadLetterListing(total=total, file=str(events.dead_letters.path), data=data)
