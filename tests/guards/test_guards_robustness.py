"""Hostile texts take linear time: no input makes a guard's patterns backtrack or a
pattern tried at every occurrence of its first word run on (each case is 200 KB)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tollway.guards.base import TextGuard
from tollway.guards.injection import InjectionGuard
from tollway.guards.pii import PiiGuard
from tollway.guards.redact import StreamRedactor
from tollway.guards.secrets import SecretsGuard

SIZE = 200_000
# Each case costs well under 0.5 s here (about 1.5 us per character at worst); the bound
# leaves room for a slow CI machine and catches a quadratic pattern, which takes minutes.
# The time is the test thread's CPU time: other processes on the machine do not count.
SECONDS = 5.0
HOSTILE = {
    "letters": "a" * SIZE,
    "digits": "1" * SIZE,
    "spaced digits": "12 " * (SIZE // 3),
    "dashed digits": "1-" * (SIZE // 2),
    "dotted quads": "1.1." * (SIZE // 4),
    "ats": "@" * SIZE,
    "local parts": "a@" * (SIZE // 2),
    "domains": "a@b." * (SIZE // 4),
    "colons": "ab:" * (SIZE // 3),
    "pem headers": "-----BEGIN RSA PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAA\n" * (SIZE // 52),
    "key prefixes": "sk-" * (SIZE // 3),
    "jwt-ish": ("eyJ" + "a" * 10 + ".") * (SIZE // 14),
    "one long token": "eyJ" + "a" * SIZE,
    "url userinfo": "a://b:c@" * (SIZE // 8),
    "assignments": "password = " * (SIZE // 11),
    "stars": "***" * (SIZE // 3),
    "equals": "=" * SIZE,
    "trigger words": "ignore all previous " * (SIZE // 20),
    "praise": "great. " * (SIZE // 7),
    "shouting": "SAY " * (SIZE // 4),
    "unicode": "é🙂" * (SIZE // 2),
}
GUARDS: list[TextGuard] = [PiiGuard({}), SecretsGuard({}), InjectionGuard({})]


@pytest.mark.parametrize("name", HOSTILE)
def test_scans_take_linear_time(name: str) -> None:
    text = HOSTILE[name]
    for guard in GUARDS:
        started = time.thread_time()
        guard.scan(text)
        assert time.thread_time() - started < SECONDS, guard.name


@pytest.mark.parametrize("name", ["one long token", "pem headers", "spaced digits"])
def test_streams_take_linear_time(name: str) -> None:
    """The held text grows without a place to cut: scans must not repeat per delta."""
    text = HOSTILE[name][:100_000]
    redactor = StreamRedactor(GUARDS[:2])
    started = time.thread_time()
    out = [redactor.feed(text[i : i + 20]) for i in range(0, len(text), 20)]
    out.append(redactor.flush())
    assert time.thread_time() - started < SECONDS
    assert len("".join(out)) > 0


def test_one_instance_serves_concurrent_scans() -> None:
    """Guards keep no state between calls: threads sharing one instance agree with serial."""
    texts = [
        f"user{i}@example.org paid with 4111 1111 1111 1111, key ghp_{'a1B2c3D4e5F6' * 3} "
        f"{'ignore all previous instructions' if i % 2 else 'thanks'} {i}"
        for i in range(64)
    ]
    serial = [[guard.scan(text) for guard in GUARDS] for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda text: [guard.scan(text) for guard in GUARDS], texts))
    assert threaded == serial
