"""Request and response bodies of the management API, named by role."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

BudgetPeriod = Literal["day", "month"]
Role = Literal["admin", "operator", "viewer"]
# Column ranges: INTEGER for per-minute limits, BIGINT for lifetime counts.
Limit = Annotated[int, Field(ge=1, le=2**31 - 1)]
BigLimit = Annotated[int, Field(ge=1, le=2**63 - 1)]
_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 10 * 365 * 86400


def parse_ttl(value: str | int) -> int:
    """Seconds from ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("ttl must be a duration like '90m' or a number of seconds")
    if isinstance(value, int):
        seconds = value
    else:
        match = _TTL.match(value)
        if not match:
            raise ValueError("ttl must look like '90s', '15m', '24h', '7d' or be seconds")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError("ttl must be at most 10 years")
    return seconds


def _no_nul(value: Any, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item, where)


def _header_safe(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or value != value.strip():
        raise ValueError("must not contain spaces at the ends or control characters")
    return value


# A provider credential is sent in a header: it must be a non-empty, single-line token.
Credential = Annotated[str, AfterValidator(_header_safe)]


class Body(BaseModel):
    """Request bodies reject unknown fields (a typo must not pass silently) and NUL
    characters (databases refuse them in text)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _text_is_storable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if name != "credentials":  # checked field by field, named precisely
                    _no_nul(value, str(name))
        return data


class Limits(Body):
    """Spend and rate limits shared by keys and projects."""

    max_budget_usd: Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=10)] | None = None
    budget_period: BudgetPeriod | None = None
    rpm: Limit | None = None
    tpm: Limit | None = None
    max_parallel: Limit | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > 64:
            raise ValueError("at most 64 metadata fields")
        return value


class KeyCreate(Limits):
    """``POST /api/v1/keys``."""

    name: str = Field(min_length=1, max_length=200)
    project: str | None = Field(None, description="Project id or name (default: 'default').")
    ttl: StrictStr | StrictInt | None = Field(
        None, description="'90s', '15m', '24h', '7d' or seconds."
    )
    expires_at: datetime | None = None
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, description="Model names or globs this key may use (default: all)."
    )
    max_requests: BigLimit | None = None

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_ttl(value)
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        now = datetime.now(UTC)
        if value <= now:
            raise ValueError("expires_at must be in the future")
        if (value - now).total_seconds() > MAX_TTL_SECONDS:
            raise ValueError("expires_at must be at most 10 years away")
        return value


class KeyUpdate(Limits):
    """``PATCH /api/v1/keys/{id}``: only the fields sent change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    max_requests: BigLimit | None = None
    active: bool | None = None


class SpendSummary(BaseModel):
    """Recorded spend of a key or project."""

    current_period: Decimal
    period: BudgetPeriod | None
    period_start: datetime | None
    lifetime: Decimal


class KeyPublic(BaseModel):
    """A key as the API shows it: never the secret."""

    id: str
    name: str
    key_prefix: str
    project_id: str
    status: Literal["active", "inactive", "revoked", "expired"]
    active: bool
    revoked_at: datetime | None
    expires_at: datetime | None
    models: list[str] | None
    max_budget_usd: Decimal | None
    budget_period: BudgetPeriod | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    max_requests: int | None
    request_count: int
    metadata: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime
    spend_usd: SpendSummary | None = None


class KeyCreated(KeyPublic):
    """The creation answer: the one time the secret is shown."""

    key: str


class ProjectCreate(Limits):
    """``POST /api/v1/projects``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    credentials: dict[str, Credential] | None = Field(
        None, description="Provider name -> API key, used instead of the global ones."
    )


class ProjectUpdate(Limits):
    """``PATCH /api/v1/projects/{id}``."""

    active: bool | None = None
    credentials: dict[str, Credential] | None = None


class ProjectPublic(BaseModel):
    """A project as the API shows it: credential names, never values."""

    id: str
    name: str
    active: bool
    max_budget_usd: Decimal | None
    budget_period: BudgetPeriod | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    metadata: dict[str, Any]
    credential_providers: list[str]
    created_at: datetime
    updated_at: datetime
    spend_usd: SpendSummary | None = None


class RevokeResult(BaseModel):
    """How many keys a bulk revocation touched."""

    project_id: str
    revoked: int


class AdminKeyCreate(Body):
    """``POST /api/v1/admin-keys``."""

    name: str = Field(min_length=1, max_length=200)
    role: Role


class AdminKeyPublic(BaseModel):
    """An admin key without its secret."""

    id: str
    name: str
    key_prefix: str
    role: Role
    active: bool
    created_at: datetime


class AdminKeyCreated(AdminKeyPublic):
    """The creation answer: the one time the secret is shown."""

    key: str


class AuditEntryPublic(BaseModel):
    """One audit log entry."""

    seq: int
    ts: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    hash: str


class AuditVerification(BaseModel):
    """``GET /api/v1/audit/verify``."""

    ok: bool
    entries: int
    broken_at: int | None
    reason: str | None
