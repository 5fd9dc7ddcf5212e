"""The schema, declared once; Alembic migrations under ``store/migrations`` create it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MONEY = Numeric(20, 10)


class Base(DeclarativeBase):
    """Declarative base for every table."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Project(Base):
    """A group of keys sharing budgets, limits and, optionally, provider credentials."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_budget_usd: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    budget_period: Mapped[str | None] = mapped_column(String(10), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_parallel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # AES-GCM sealed JSON {provider_name: api_key}; never returned by the API.
    credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Policies the proxy applies to the project's keys (null: not set).
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    guards: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cors_origins: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    cache: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    capture: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VirtualKey(Base):
    """A client key: only its keyed hash is stored."""

    __tablename__ = "keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    max_budget_usd: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    budget_period: Mapped[str | None] = mapped_column(String(10), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_parallel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_requests: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Guard settings overriding the project's, guard by guard (null: none).
    guards: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    expiry_audited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdminKey(Base):
    """A management-API key with a role: admin, operator or viewer."""

    __tablename__ = "admin_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Epoch(Base):
    """Change counters read on every request: a bump invalidates every process's cache."""

    __tablename__ = "epochs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Switch(Base):
    """A kill switch an operator turned off (or back on): ``proxy``, ``provider:<name>``
    or ``deployment:<provider>/<model>``. No row means on."""

    __tablename__ = "switches"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One link of the hash-chained audit log."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_ts", "ts"),
        Index("ix_audit_log_actor", "actor"),
        Index("ix_audit_log_target", "target_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (one row): updating it first serializes appends on any database."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class SpendRecord(Base):
    """One proxied call: who, what, how many tokens, what it cost, how it went."""

    __tablename__ = "spend"
    __table_args__ = (
        Index("ix_spend_ts", "ts"),
        Index("ix_spend_key_ts", "key_id", "ts"),
        Index("ix_spend_project_ts", "project_id", "ts"),
        Index("ix_spend_model_ts", "model", "ts"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(80), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    # The same cost in integer pico-dollars: SQLite has no exact decimal arithmetic, so
    # every SUM runs on this column.
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    priced: Mapped[bool] = mapped_column(Boolean, default=True)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(String(80), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Why a record is not plain: usage_invalid, crash_recovered, ... (comma-separated).
    flags: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # What the guards decided: [{"guard", "action", "kinds", "count"}, ...] (None: nothing).
    guards: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The client's User-Agent header, cut to the column.
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Every upstream try, in order: [{"provider", "model", "outcome", "status",
    # "latency_ms"}, ...] (None: no upstream call, or recorded before 0010).
    attempt_log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class SpendRollup(Base):
    """Totals of the spend rows in one hour or one day (``span`` seconds from ``bucket``,
    UNIX seconds) per key, project, model, provider, endpoint and metadata set
    (``SpendMetadata``; 0: none); kept in the transaction that inserts the rows, and kept
    when retention deletes them. A missing key, project, model or provider is stored as ''
    (a NULL would never conflict, so never add up)."""

    __tablename__ = "spend_rollups"
    __table_args__ = (
        Index("ix_spend_rollups_key", "key_id", "span", "bucket"),
        Index("ix_spend_rollups_project", "project_id", "span", "bucket"),
        # SQLite: the rows live in the primary key's b-tree, so a range of buckets is
        # read in one pass without a lookup per row.
        {"sqlite_with_rowid": False},
    )

    span: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(80), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40), primary_key=True)
    metadata_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    error_requests: Mapped[int] = mapped_column(BigInteger, default=0)


class SpendRunning(Base):
    """Running totals (``store/running.py``): for one value of one grouping (a key, a
    model, ...; ``projection`` names the grouping, '' the value for none), the totals of
    all its calls up to the end of the hour starting at ``bucket``."""

    __tablename__ = "spend_running"
    __table_args__ = (
        Index("ix_spend_running_bucket", "bucket"),
        {"sqlite_with_rowid": False},
    )

    projection: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_requests: Mapped[int] = mapped_column(BigInteger, default=0)


class SpendRunningHead(Base):
    """The last hour with calls of each value of each grouping (``SpendRunning``) and
    the running totals there: a report over a range reads only the values active since
    its start, and a report up to now reads their totals here."""

    __tablename__ = "spend_running_heads"
    __table_args__ = (
        Index("ix_spend_running_heads_last", "projection", "last_bucket"),
        {"sqlite_with_rowid": False},
    )

    projection: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_bucket: Mapped[int] = mapped_column(BigInteger)
    # The running totals at ``last_bucket``.
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_requests: Mapped[int] = mapped_column(BigInteger, default=0)


class SpendRunningState(Base):
    """One row: the running totals are complete before the hour ``horizon`` (UNIX
    seconds); a late spend record moves it back in its own transaction."""

    __tablename__ = "spend_running_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    horizon: Mapped[int] = mapped_column(BigInteger)


class SpendMetadata(Base):
    """A distinct metadata set of the calls in the rollups (``store/spend_metadata.py``):
    found again by the digest of its canonical JSON; an erased subject's fields are
    removed from it and its digest cleared."""

    __tablename__ = "spend_metadata"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    digest: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)


class RequestBody(Base):
    """A call's captured request and response (projects that turn capture on): cut to
    the project's limit, secrets redacted; ``*_bytes`` are the sizes before the cut."""

    __tablename__ = "request_bodies"
    __table_args__ = (Index("ix_request_bodies_ts", "ts"),)

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    response_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetSlot(Base):
    """Spend and holds of one budget period, for several processes without Redis."""

    __tablename__ = "budget_slots"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period_start: Mapped[str] = mapped_column(String(10), primary_key=True)
    spent_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    held_nano: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetHold(Base):
    """Money one call in flight holds on one budget slot: whose call (``instance``, the
    gateway process) and until when (refreshed while the call runs), so that a crashed
    process's holds are found and reclaimed."""

    __tablename__ = "budget_holds"
    __table_args__ = (
        Index("ix_budget_holds_instance", "instance"),
        Index("ix_budget_holds_expires_at", "expires_at"),
    )

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[str] = mapped_column(String(10))
    nano: Mapped[int] = mapped_column(BigInteger)
    instance: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[int] = mapped_column(BigInteger)  # UNIX seconds


class QuarantinedSpend(Base):
    """A spend record the database refused: kept whole, with the reason, for an operator."""

    __tablename__ = "spend_quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    record: Mapped[str] = mapped_column(Text)  # JSON text (NULs escaped), not a JSON column


class UiSession(Base):
    """A signed-in admin UI session (``ui/sessions.py``): only a keyed hash of its token
    is stored. It lasts until ``expires_at``, a sign-out, or its admin key's revocation."""

    __tablename__ = "ui_sessions"
    __table_args__ = (
        Index("ix_ui_sessions_expires_at", "expires_at"),
        Index("ix_ui_sessions_admin_key_id", "admin_key_id"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # master, admin_key or oidc
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16))
    admin_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The master key's keyed hash when it signed in: a rotated master key ends the session.
    master_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
