"""The ``ui`` section of the config: session lifetime, cookie flags, optional OIDC."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

UiRole = Literal["admin", "operator", "viewer"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str) -> str:
    """An https URL (plain http only on this machine's loopback, for development)."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return value.rstrip("/")
    raise ValueError("must be an https:// URL (http:// only for localhost)")


class OidcConfig(BaseModel):
    """Sign-in through an OpenID Connect provider: authorization code with PKCE; a claim
    of the ID token decides the role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="The provider's issuer URL (discovery is read from it).")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = Field(
        None, description="Unset for a public client (PKCE alone)."
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    role_claim: str = Field(
        "groups", description="The claim holding the user's groups or roles (a.b: nested)."
    )
    roles: dict[str, UiRole] = Field(
        default_factory=dict, description="Claim value -> role; the highest match wins."
    )
    default_role: UiRole | None = Field(
        None, description="Role of a user no value maps; unset: such users are refused."
    )
    actor_claim: str = Field(
        "email", description="The claim naming the user in the audit log (else 'sub')."
    )
    redirect_url: str | None = Field(
        None,
        description="The callback URL registered with the provider; default: public_url "
        "(else the URL the browser used) + /ui/oidc/callback.",
    )
    label: str = Field("Sign in with single sign-on", max_length=80)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_url(value)

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        return check_url(value) if value is not None else None

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        return value

    @model_validator(mode="after")
    def _some_role(self) -> OidcConfig:
        if not self.roles and self.default_role is None:
            raise ValueError("roles: map at least one claim value to a role, or set default_role")
        return self


class UiConfig(BaseModel):
    """The admin UI at /ui."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    session_ttl: int = Field(
        8 * 3600, ge=300, le=30 * 86400, description="Seconds a sign-in lasts (absolute)."
    )
    cookie_secure: bool | None = Field(
        None,
        description="Mark the session cookie Secure; unset: when the request came over "
        "TLS. Set true behind a proxy that terminates TLS.",
    )
    oidc: OidcConfig | None = None
