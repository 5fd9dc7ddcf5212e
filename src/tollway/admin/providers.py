"""``/api/v1/providers``: configured providers and each deployment's health in this
process (circuit state, latency, error rate)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request

from tollway.admin.deps import require_role

router = APIRouter(
    prefix="/providers", tags=["providers"], dependencies=[Depends(require_role("viewer"))]
)


def _without_credentials(url: str) -> str:
    """A URL with any ``user:password@`` replaced: viewers may read this report."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@router.get("")
async def list_providers(request: Request) -> dict[str, Any]:
    """Providers (never their credentials) and their deployments' state."""
    gateway = request.app.state.gateway
    deployments: dict[str, list[dict[str, Any]]] = {}
    for model, deployment in gateway.router.deployments():
        entry = {"model_name": model, **deployment.snapshot()}
        deployments.setdefault(deployment.provider.name, []).append(entry)
    providers = [
        {
            "name": name,
            "type": provider.config.type,
            "dialect": provider.dialect.value,
            "base_url": _without_credentials(provider.base_url),
            "deployments": deployments.get(name, []),
        }
        for name, provider in gateway.providers.items()
    ]
    return {"providers": providers}
