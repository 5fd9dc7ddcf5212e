"""``/api/v1/providers``: configured providers and each deployment's health in this
process (circuit state, latency, error rate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from tollway.admin.deps import require_role

router = APIRouter(
    prefix="/providers", tags=["providers"], dependencies=[Depends(require_role("viewer"))]
)


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
            "base_url": provider.base_url,
            "deployments": deployments.get(name, []),
        }
        for name, provider in gateway.providers.items()
    ]
    return {"providers": providers}
