"""Request and response bodies of the management API, named by role."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from tollway.admin.fields import (
    MAX_TTL_SECONDS,
    TTL_SCHEMA,
    BigLimit,
    BudgetPeriod,
    Credential,
    Instant,
    Limit,
    Money,
    Patch,
    Role,
    check_metadata,
    metadata_schema,
    parse_ttl,
    storable,
)
from tollway.admin.policies import (
    CacheTtl,
    CaptureBytes,
    CorsOrigins,
    Guards,
    ModelScope,
)
from tollway.bounds import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_FIELDS,
    MAX_METADATA_TEXT,
    SAFE_INT,
)
from tollway.capture import DEFAULT_CAPTURE_BYTES


class Body(BaseModel):
    """Request bodies reject unknown fields (a typo must not pass silently), and text a
    database or a log cannot hold."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _text_is_storable(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name != "metadata":  # checked with its own bounds, more precisely
            storable(value)
        return value


class Limits(Body):
    """Spend and rate limits shared by keys and projects; null clears a limit."""

    max_budget_usd: Money | None = None
    budget_period: BudgetPeriod | None = None
    rpm: Limit | None = None
    tpm: Limit | None = None
    max_parallel: Limit | None = None
    metadata: Annotated[dict[str, Any], AfterValidator(check_metadata)] | None = Field(
        None,
        json_schema_extra=metadata_schema,
        description=f"At most {MAX_METADATA_FIELDS} fields and {MAX_METADATA_BYTES} bytes: "
        f"text up to {MAX_METADATA_TEXT} characters, integers within +-{SAFE_INT}, finite "
        f"numbers, booleans, null, and lists or objects of those {MAX_METADATA_DEPTH} deep.",
    )


class KeyCreate(Limits):
    """``POST /api/v1/keys``."""

    name: str = Field(min_length=1, max_length=200)
    project: str | None = Field(None, description="Project id or name (default: 'default').")
    ttl: Annotated[StrictStr | StrictInt | None, WithJsonSchema(TTL_SCHEMA)] = Field(
        None, description="'90s', '15m', '24h', '7d' or seconds."
    )
    expires_at: Instant | None = None
    models: ModelScope | None = None
    max_requests: BigLimit | None = None
    guards: Guards | None = Field(None, description="Overrides of the project's guards.")

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
        now = datetime.now(UTC)
        if value <= now:
            raise ValueError("expires_at must be in the future")
        if (value - now).total_seconds() > MAX_TTL_SECONDS:
            raise ValueError("expires_at must be at most 10 years away")
        return value


class KeyUpdate(Limits):
    """``PATCH /api/v1/keys/{id}``: only the fields sent change."""

    name: Patch[Annotated[str, Field(min_length=1, max_length=200)]] = None
    models: ModelScope | None = None
    max_requests: BigLimit | None = None
    active: Patch[StrictBool] = None
    guards: Guards | None = Field(None, description="Overrides of the project's guards.")


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
    guards: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime
    spend_usd: SpendSummary | None = None


class KeyCreated(KeyPublic):
    """The creation answer: the one time the secret is shown."""

    key: str


class CacheSettings(Body):
    """A project's response cache."""

    enabled: StrictBool
    ttl: CacheTtl | None = Field(
        None, description="Seconds; unset: the model's cache_ttl, else the gateway's cache.ttl."
    )


class CaptureSettings(Body):
    """A project's capture of prompt and response bodies into the request log (secrets
    redacted, each body cut to ``max_bytes``)."""

    enabled: StrictBool
    max_bytes: CaptureBytes = DEFAULT_CAPTURE_BYTES


class ProjectPolicies(Limits):
    """What a project asks of the proxy for its keys; null clears a policy."""

    models: ModelScope | None = None
    guards: Guards | None = None
    cors_origins: CorsOrigins | None = None
    cache: CacheSettings | None = None
    capture: CaptureSettings | None = Field(None, description="Off unless set and enabled.")


class ProjectCreate(ProjectPolicies):
    """``POST /api/v1/projects``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    credentials: dict[str, Credential] | None = Field(
        None, description="Provider name -> API key, used instead of the global ones."
    )


class ProjectUpdate(ProjectPolicies):
    """``PATCH /api/v1/projects/{id}``: only the fields sent change."""

    active: Patch[StrictBool] = None
    credentials: dict[str, Credential] | None = None


class CachePublic(BaseModel):
    """A project's response cache as stored."""

    enabled: bool
    ttl: int | None


class CapturePublic(BaseModel):
    """A project's body capture as stored."""

    enabled: bool
    max_bytes: int


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
    models: list[str] | None
    guards: dict[str, Any]
    cors_origins: list[str]
    cache: CachePublic | None
    capture: CapturePublic | None = None
    credential_providers: list[str]
    created_at: datetime
    updated_at: datetime
    spend_usd: SpendSummary | None = None


class SwitchesPublic(BaseModel):
    """Every configured kill switch: true is on (serving), false is off."""

    proxy: bool
    providers: dict[str, bool]
    deployments: dict[str, bool] = Field(description="By 'provider/model'.")


class SwitchesUpdate(Body):
    """``PATCH /api/v1/switches``: only the switches sent change."""

    proxy: Patch[StrictBool] = None
    providers: Patch[dict[str, StrictBool]] = None
    deployments: Patch[dict[str, StrictBool]] = Field(
        None, description="By 'provider/model', as GET lists them."
    )


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


class ErrorDetail(BaseModel):
    """What went wrong: ``param`` names the offending field, when there is one."""

    message: str
    type: str
    code: str | None
    param: str | None


class ErrorResponse(BaseModel):
    """Every error answer of the management API (the OpenAI shape)."""

    error: ErrorDetail


_MEANINGS = {
    400: "Malformed, or names something that does not exist",
    401: "No valid master key or admin key",
    403: "The admin key's role does not allow this",
    404: "No such resource",
    422: "A field is invalid (``param`` names it)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route answers with."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]} for status in statuses
    }
