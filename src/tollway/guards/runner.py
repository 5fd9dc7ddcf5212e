"""Running the guards that apply to a call: which ones, built once, and what they decide.

The settings that apply are the gateway's ``guards:`` with each of the project's and
then the key's own settings replacing the one of the same name (``KeyEntry.guards``
holds the project's and key's, merged). Master-key calls get the gateway's.

Guards are plugins (``tollway.guards``); a set of settings is built into guard objects
once and reused by every call with the same settings (compiling patterns is not
per-call work). On the request, request guards (limits) run first, then text guards
over every text slot of the body, in the order configured:

    block   GuardBlocked: 400 in the endpoint's dialect, code ``guard_<name>`` (the
            first blocking guard's); every guard still runs first, so the blocked
            call's record lists all their decisions (``GuardBlocked.decisions``)
    redact  rewrite the slot in the payload (the forwarded body is built from it)
    flag    record the findings only

A request whose body is larger than ``THREAD_BYTES`` is screened in a worker thread
(``check``), so one large or hostile prompt does not hold up the event loop and every
other call of the process with it.

On the response, text guards that screen responses (``TextGuard.screens_responses``)
redact or flag it, streamed or not (see ``response.py``); a response is never blocked
(it is already paid for), so a blocking guard redacts what it finds there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from tollway.auth.credentials import Principal
from tollway.errors import BadRequest, InternalError
from tollway.guards.base import Action, Finding, RequestGuard, RequestView, TextGuard
from tollway.guards.redact import redact, resolve
from tollway.guards.texts import request_texts
from tollway.metering.tokens import TokenCounter

log = logging.getLogger("tollway.guards")
GuardType = type[TextGuard] | type[RequestGuard]
Settings = Mapping[str, Mapping[str, Any]]  # {name: {"action": ..., **options}}
# Distinct guard settings kept built (projects and keys with their own): beyond this
# the built sets are dropped and rebuilt on demand.
_BUILT_LIMIT = 256
_MAX_KINDS = 16
# Request bodies past this size are screened in a worker thread (a screen of 64 KiB of
# text takes tens of milliseconds; handing one to a thread costs tens of microseconds).
THREAD_BYTES = 64 * 1024


class GuardBlocked(BadRequest):
    """A guard refused the request. The message names the guard and the kinds found,
    never the text that matched (it may be the secret itself); ``decisions`` are all the
    guards' on the request, for the call's record."""

    def __init__(self, guard: str, kinds: list[str], decisions: list[Decision]) -> None:
        found = ", ".join(kinds[:_MAX_KINDS])
        super().__init__(
            f"The request was blocked by the '{guard}' guard ({found}).",
            code=f"guard_{guard}",
        )
        self.decisions = decisions


@dataclass(frozen=True, slots=True)
class Decision:
    """What one guard did to one side of a call, for the spend record and the log."""

    guard: str
    action: str  # block, redact or flag: what was done
    side: str  # request or response
    kinds: tuple[str, ...]
    count: int
    score: float | None = None

    def as_record(self) -> dict[str, Any]:
        """The decision as stored with the call."""
        record: dict[str, Any] = {
            "guard": self.guard,
            "action": self.action,
            "side": self.side,
            "kinds": list(self.kinds),
            "count": self.count,
        }
        if self.score is not None:
            record["score"] = round(self.score, 3)
        return record


def decision(guard: str, action: Action, side: str, findings: list[Finding]) -> Decision:
    """One guard's findings summed up: the kinds (sorted, at most 16) and how many."""
    kinds = sorted(Counter(f.kind for f in findings))[:_MAX_KINDS]
    scores = [f.score for f in findings if f.score is not None]
    return Decision(
        guard, action.value, side, tuple(kinds), len(findings), max(scores, default=None)
    )


class ActiveGuards:
    """The built guards of one set of settings, in order, with their actions."""

    def __init__(
        self,
        text: list[tuple[TextGuard, Action]],
        request: list[tuple[RequestGuard, Action]],
    ) -> None:
        self.text = text
        self.request = request
        # Response screening: redact (blocking guards redact there) or flag.
        self.response = [
            (guard, Action.REDACT if action is Action.BLOCK else action)
            for guard, action in text
            if guard.screens_responses
        ]

    async def check(self, endpoint: str, payload: dict[str, Any], size: int) -> list[Decision]:
        """``screen``, in a worker thread when the request's body (``size`` bytes, at
        least as many as the characters of its texts) is larger than ``THREAD_BYTES``."""
        if size > THREAD_BYTES:
            return await asyncio.to_thread(self.screen, endpoint, payload)
        return self.screen(endpoint, payload)

    def screen(self, endpoint: str, payload: dict[str, Any]) -> list[Decision]:
        """Check a request (and redact it in place); GuardBlocked when one blocks."""
        decisions: list[Decision] = []
        slots = request_texts(endpoint, payload)
        if self.request:
            view = RequestView(endpoint, payload, tuple(slot.get() for slot in slots))
            for whole, action in self.request:
                findings = whole.check(view)
                if findings:
                    decisions.append(decision(whole.name, action, "request", findings))
            # A request refused as a whole (too large, say) is not read any further.
            _raise_on_block(decisions)
        for guard, action in self.text:
            read = slots if guard.roles is None else [s for s in slots if s.role in guard.roles]
            # Overlapping findings (chained matches) count once, as they are redacted.
            scanned = guard.scan_all([slot.get() for slot in read])
            by_slot = [(slot, resolve(found)) for slot, found in zip(read, scanned, strict=True)]
            findings = [f for _, found in by_slot for f in found]
            if not findings:
                continue
            decisions.append(decision(guard.name, action, "request", findings))
            if action is Action.REDACT:
                for slot, found in by_slot:
                    if found:
                        slot.set(redact(slot.get(), found, guard))
        _raise_on_block(decisions)
        return decisions


def _raise_on_block(decisions: list[Decision]) -> None:
    """GuardBlocked, naming the first guard that blocks, when one does."""
    for done in decisions:
        if done.action == Action.BLOCK:
            raise GuardBlocked(done.guard, list(done.kinds), decisions)


class Guards:
    """Builds and caches the guards each call gets."""

    def __init__(
        self,
        load: Callable[[str], GuardType],
        defaults: Settings,
        tokens: TokenCounter | None = None,
    ) -> None:
        self._load = load
        self._tokens = tokens
        self._defaults = {name: dict(setting) for name, setting in defaults.items()}
        self._built: dict[bytes, ActiveGuards | None] = {}
        # Build the gateway's own now: a bad option stops startup, not a call.
        self._default = self._build(self._defaults)

    def check(self, name: str, setting: Mapping[str, Any]) -> None:
        """ValueError when ``setting`` cannot build guard ``name`` (unknown guard, bad
        option, an action it cannot take): the management API refuses it up front."""
        self._build({name: dict(setting)})

    def for_call(self, principal: Principal) -> ActiveGuards | None:
        """The guards for this caller (None: none apply)."""
        key = principal.key
        if key is None or not key.guards:
            return self._default
        merged: dict[str, Mapping[str, Any]] = dict(self._defaults)
        for name, setting in key.guards.items():
            merged[name] = {"action": setting.action, **setting.options}
        canonical = orjson.dumps(merged, option=orjson.OPT_SORT_KEYS)
        if canonical not in self._built:
            if len(self._built) >= _BUILT_LIMIT:
                self._built.clear()
            try:
                self._built[canonical] = self._build(merged)
            except ValueError as exc:
                # Stored before this guard or option was refused (or the plugin changed):
                # fail closed, with the reason in the log and not in the client's answer.
                log.error(
                    "guard settings do not build",
                    extra={"fields": {"key_id": key.id, "reason": str(exc)}},
                )
                raise GuardMisconfigured() from None
        return self._built[canonical]

    def _build(self, settings: Settings) -> ActiveGuards | None:
        text: list[tuple[TextGuard, Action]] = []
        request: list[tuple[RequestGuard, Action]] = []
        for name, setting in settings.items():
            raw_action = setting.get("action")
            try:
                action = Action(str(raw_action))
            except ValueError:
                raise ValueError(f"{name}: unknown action {raw_action!r}") from None
            if action is Action.OFF:
                continue
            options = {k: v for k, v in setting.items() if k != "action"}
            cls = self._load(name)
            if issubclass(cls, RequestGuard):
                if action is Action.REDACT:
                    raise ValueError(f"{name}: checks the request as a whole; block or flag")
                request.append((self._request_guard(cls, options), action))
            else:
                text.append((cls(options), action))
        if not text and not request:
            return None
        return ActiveGuards(text, request)

    def _request_guard(self, cls: type[RequestGuard], options: dict[str, Any]) -> RequestGuard:
        if cls.wants_tokens and self._tokens is not None:
            built: RequestGuard = cast(Any, cls)(options, tokens=self._tokens)
            return built
        return cls(options)


class GuardMisconfigured(InternalError):
    """A project's or key's stored guard settings no longer build: the call is refused
    (fail closed) rather than served unguarded."""

    code = "guard_misconfigured"

    def __init__(self) -> None:
        super().__init__(
            "The guard settings of this key or its project cannot be applied; an operator "
            "must correct them (the gateway's log says why)."
        )
