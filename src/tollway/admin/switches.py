"""``/api/v1/switches``: turn the whole proxy, a provider or a deployment off and on.

Every change is one audit entry (``switch.changed``: before, after) and a bump of the
switches epoch in the same transaction, so every gateway process and host applies it on
its next request.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tollway.admin.deps import Caller, Configured, Context, require_role
from tollway.admin.schemas import SwitchesPublic, SwitchesUpdate, errors
from tollway.audit.chain import append
from tollway.errors import BadRequest
from tollway.settings import Settings
from tollway.store import switches as switch_store
from tollway.store.switches import PROXY, SwitchState, deployment_switch, provider_switch
from tollway.switches import deployment_labels

router = APIRouter(
    prefix="/switches", tags=["switches"], dependencies=[Depends(require_role("operator"))]
)
_TARGET_CHARS = 80  # audit_log.target_id; the whole name is in the entry's details
_NAMED = 10  # unknown names listed in an error, at most


def _public(states: dict[str, SwitchState], settings: Settings) -> SwitchesPublic:
    def on(name: str) -> bool:
        state = states.get(name)
        return state.enabled if state is not None else True

    return SwitchesPublic(
        proxy=on(PROXY),
        providers={name: on(provider_switch(name)) for name in settings.providers},
        deployments={
            label: on(deployment_switch(label)) for label in deployment_labels(settings.models)
        },
    )


def _unknown(field: str, names: list[str], known: list[str]) -> BadRequest:
    shown = ", ".join(repr(name) for name in names[:_NAMED])
    more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
    listed = ", ".join(known[:50]) or "none configured"
    kind = "provider" if field == "providers" else "deployment"
    return BadRequest(
        f"{field}: unknown {kind}{'s' if len(names) > 1 else ''} {shown}{more} "
        f"(configured: {listed}).",
        param=f"{field}.{names[0]}",
    )


def _wanted(body: SwitchesUpdate, settings: Settings) -> dict[str, bool]:
    """The switch rows a request asks for, once every name it uses is known."""
    providers, labels = list(settings.providers), deployment_labels(settings.models)
    wanted: dict[str, bool] = {}
    if body.proxy is not None:
        wanted[PROXY] = body.proxy
    for field, given, known, name_of in (
        ("providers", body.providers, providers, provider_switch),
        ("deployments", body.deployments, labels, deployment_switch),
    ):
        allowed = set(known)
        unknown = [name for name in given or {} if name not in allowed]
        if unknown:
            raise _unknown(field, unknown, known)
        wanted.update({name_of(name): enabled for name, enabled in (given or {}).items()})
    return wanted


@router.get("", response_model=SwitchesPublic)
async def show_switches(ctx: Context, settings: Configured) -> SwitchesPublic:
    """Every configured switch: the proxy, each provider, each deployment."""
    async with ctx.db.reader() as session:
        states = await switch_store.states(session)
    return _public(states, settings)


@router.patch("", response_model=SwitchesPublic, responses=errors(400))
async def set_switches(
    body: SwitchesUpdate, ctx: Context, caller: Caller, settings: Configured
) -> SwitchesPublic:
    """Turn switches off (false) or on (true); the others keep their state. Applies on
    every process's next request."""
    wanted = _wanted(body, settings)
    async with ctx.db.transaction() as session:
        if wanted:
            for change in await switch_store.apply(session, wanted, caller.actor):
                await append(
                    session,
                    ctx.server_keys.audit,
                    actor=caller.actor,
                    action="switch.changed",
                    target_type="switch",
                    target_id=change.name[:_TARGET_CHARS],
                    details={"switch": change.name, "before": change.before, "after": change.after},
                )
        states = await switch_store.states(session)
    return _public(states, settings)
