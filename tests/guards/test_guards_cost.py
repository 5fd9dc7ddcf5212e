"""What a hostile prompt can make the guards spend: work linear in the text, phone
validations bounded per request, and large screens off the event loop.

Work is counted, not timed: Python steps (line events) per character of text, and calls
into libphonenumber. A screen in a worker thread is proven by a guard that waits for
the event loop to run while it scans.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, ClassVar

import orjson
import phonenumbers
import pytest

from tollway.auth.credentials import Principal
from tollway.dialects.endpoints import Endpoint
from tollway.guards.base import Action, Finding, TextGuard
from tollway.guards.pii import PHONE_CHECK_CHARS, PHONE_CHECKS, PiiGuard
from tollway.guards.response import ResponseScreen
from tollway.guards.runner import THREAD_BYTES, ActiveGuards, Guards, GuardType
from tollway.guards.secrets import SecretsGuard

MASTER = Principal("master")


class TooMuchWork(Exception):
    """A scan took more Python steps than its budget."""


def python_steps(run: Callable[[], object], budget: int) -> int:
    """The Python lines ``run`` executes (stopped with TooMuchWork past ``budget``)."""
    steps = 0

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
            if steps > budget:
                raise TooMuchWork(f"more than {budget} steps")
        return line

    sys.settrace(lambda frame, event, arg: line)
    try:
        run()
    finally:
        sys.settrace(None)
    return steps


def active(guard: GuardType, action: str = "flag", **options: Any) -> ActiveGuards:
    """The gateway's guards with only ``guard`` configured."""
    built = Guards(lambda name: guard, {guard.name: {"action": action, **options}})
    found = built.for_call(MASTER)
    assert found is not None
    return found


# -- linear work ---------------------------------------------------------------------------

STEPS_PER_CHAR = 10  # measured: 1-2.1 steps per character on each text below


@pytest.mark.parametrize(
    "text",
    [
        "token=" * 5000,
        "password = " * 3000,
        "api_key: " * 3000,
        "secret_token := " * 2000,
        ("secret=" + "a1B2c3D4" * 200 + " ") * 20,
        "token=abcdefgh1234 " * 2000,
        "passwd=" + "x" * 30_000,
    ],
    ids=lambda text: text[:12],
)
def test_assigned_secrets_cost_linear_work(text: str) -> None:
    """A value is read once, not once for every secret-sounding name inside it: "token="
    repeated used to cost ~170 steps (and 1024 characters of matching) per character."""
    guard = SecretsGuard({})
    steps = python_steps(lambda: guard.scan(text), STEPS_PER_CHAR * len(text))
    assert steps <= STEPS_PER_CHAR * len(text)


# -- phone validations -----------------------------------------------------------------------


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts libphonenumber is asked to validate."""
    asked: list[str] = []
    real = phonenumbers.PhoneNumberMatcher

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", counting)
    yield asked


def _numbers(count: int) -> list[str]:
    """Distinct valid US numbers."""
    return [f"+1 415 {300 + i // 1000} {i % 1000:04d}" for i in range(count)]


def test_phone_validations_are_bounded_per_request(validations: list[str]) -> None:
    """Spread over many messages (each message a text of its own), a request's phone
    numbers cost at most the request's budget; past it every phone-shaped number is
    redacted unvalidated (over-redacted, never missed)."""
    numbers = _numbers(2000)
    payload = {"messages": [{"role": "user", "content": f"call {n}"} for n in numbers]}
    chars = sum(len(m["content"]) for m in payload["messages"])
    active(PiiGuard, "redact").screen("chat.completions", payload)
    assert 0 < len(validations) <= PHONE_CHECKS + chars // PHONE_CHECK_CHARS
    assert [m["content"] for m in payload["messages"]] == ["call [REDACTED:phone]"] * 2000


def test_phone_validations_are_bounded_per_text(validations: list[str]) -> None:
    text = ", ".join(_numbers(5000))
    findings = PiiGuard({}).scan(text)
    assert len(validations) <= PHONE_CHECKS + len(text) // PHONE_CHECK_CHARS
    assert [f.kind for f in findings] == ["phone"] * 5000


# -- the event loop ------------------------------------------------------------------------


class _Waiting(TextGuard):
    """Finds nothing, after waiting (in the scanning thread) until released."""

    name: ClassVar[str] = "waiting"
    release: ClassVar[threading.Event]
    threads: ClassVar[list[int]]

    def scan(self, text: str) -> list[Finding]:
        type(self).threads.append(threading.get_ident())
        if not type(self).release.wait(30):
            raise AssertionError("the event loop did not run while the guard scanned")
        return []


@pytest.fixture
def waiting() -> type[_Waiting]:
    _Waiting.release, _Waiting.threads = threading.Event(), []
    return _Waiting


async def _while_scanning(waiting: type[_Waiting], screening: asyncio.Future[Any]) -> Any:
    """Release the guard once it scans, from the event loop: only possible when the scan
    runs in another thread."""
    while not waiting.threads:
        await asyncio.sleep(0.01)
    waiting.release.set()
    return await screening


def test_a_large_request_is_screened_off_the_event_loop(waiting: type[_Waiting]) -> None:
    guards = active(waiting)
    payload = {"messages": [{"role": "user", "content": "x" * (THREAD_BYTES + 1)}]}
    size = len(orjson.dumps(payload))

    async def main() -> int:
        screening = asyncio.ensure_future(guards.check("chat.completions", payload, size))
        await _while_scanning(waiting, screening)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert waiting.threads and waiting.threads[0] != loop_thread


def test_a_small_request_is_screened_inline(waiting: type[_Waiting]) -> None:
    """Below the threshold a thread would cost more than the screen."""
    waiting.release.set()
    guards = active(waiting)
    payload = {"messages": [{"role": "user", "content": "hello"}]}

    async def main() -> int:
        await guards.check("chat.completions", payload, len(orjson.dumps(payload)))
        return threading.get_ident()

    assert waiting.threads == [asyncio.run(main())]


def test_a_large_answer_is_screened_off_the_event_loop(waiting: type[_Waiting]) -> None:
    screen = ResponseScreen(Endpoint.CHAT_COMPLETIONS, [(waiting({}), Action.REDACT)])
    answer = {"choices": [{"index": 0, "message": {"content": "x" * (THREAD_BYTES + 1)}}]}
    body = orjson.dumps(answer)

    async def main() -> int:
        assert await _while_scanning(waiting, asyncio.ensure_future(screen.whole_async(body)))
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert waiting.threads and waiting.threads[0] != loop_thread
