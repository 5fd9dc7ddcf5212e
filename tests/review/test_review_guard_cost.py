"""Review: a guard scan of one client's prompt runs on the event loop and stalls every
other call of the process (health checks included) for as long as it takes.

``token=`` repeated makes the secrets guard try an assigned-secret match of up to 1024
characters at every sixth character (about 25 us per character: 250 s for a 10 MB
body, which the default 32 MiB body limit admits). Dense phone numbers cost the pii guard
about 8 us per character.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fake_upstream import FakeUpstream
from harness import GPT, MASTER_KEY, GatewayServer, gateway_settings, running_gateway

PROMPT_CHARS = 300_000


@pytest.fixture(scope="module")
def guarded(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = gateway_settings(
        fake_server,
        tmp_path_factory.mktemp("review-cost"),
        guards={"secrets": {"action": "flag"}, "pii": {"action": "flag"}},
    )
    with running_gateway(settings) as server:
        yield server


@pytest.mark.parametrize(
    "text",
    [("token=" * (PROMPT_CHARS // 6)), ("+1 415 555 2671, " * (PROMPT_CHARS // 17))],
    ids=["assigned-secret", "phone-numbers"],
)
def test_one_large_prompt_stalls_every_other_call(
    guarded: GatewayServer, fake: FakeUpstream, text: str
) -> None:
    body = {"model": GPT, "messages": [{"role": "user", "content": text}]}

    def heavy() -> None:
        with httpx.Client(base_url=guarded.url, timeout=120) as http:
            http.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {MASTER_KEY}"},
                json=body,
            )

    worker = threading.Thread(target=heavy)
    worker.start()
    time.sleep(0.5)  # the body is read and the scan has started
    started = time.monotonic()
    with httpx.Client(base_url=guarded.url, timeout=60) as http:
        assert http.get("/health/live").status_code == 200
    stalled = time.monotonic() - started
    worker.join(120)
    assert stalled < 1.0, f"a health check waited {stalled:.1f} s behind one prompt's guards"
