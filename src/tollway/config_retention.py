"""The configuration section for how long the request log keeps what it stores.

Each call is one row, which is both its request-log entry and its spend detail. A row
goes once it is older than ``requests_days`` and, if the call used tokens or cost
anything, also older than ``spend_days``. Captured bodies go after ``bodies_days`` (or
with their row). The hourly and daily spend rollups are always kept: spend reports,
budgets and key spend never change when rows go. Null keeps for ever.
"""

from __future__ import annotations

from pydantic import Field

from tollway.config import Strict

MAX_DAYS = 36_500


class RetentionConfig(Strict):
    """Retention of request-log rows, spend detail and captured bodies."""

    requests_days: int | None = Field(
        30,
        ge=1,
        le=MAX_DAYS,
        description="Days every call's row is kept (the request log).",
    )
    spend_days: int | None = Field(
        None,
        ge=1,
        le=MAX_DAYS,
        description="Days the row of a call that used tokens or cost anything is kept (spend "
        "detail); null: for ever. The rollups are kept regardless.",
    )
    bodies_days: int | None = Field(
        7, ge=1, le=MAX_DAYS, description="Days captured request and response bodies are kept."
    )
    interval_seconds: float = Field(
        300.0, ge=1, le=86_400, description="How often the background task deletes."
    )
    batch: int = Field(
        2_000, ge=1, le=100_000, description="Rows deleted per transaction (short locks)."
    )
