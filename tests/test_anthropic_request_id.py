"""Every Anthropic-dialect answer names its request the way the Anthropic SDKs read it
(``request-id``, behind ``message._request_id``), as well as ``x-request-id``."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from fake_upstream import FakeUpstream
from harness import CLAUDE, GPT

MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("model", [CLAUDE, GPT], ids=["native", "translated"])
def test_message_request_id(claude: anthropic.Anthropic, fake: FakeUpstream, model: str) -> None:
    raw = claude.messages.with_raw_response.create(model=model, max_tokens=20, messages=MESSAGES)
    message = raw.parse()
    assert message._request_id is not None
    assert message._request_id == raw.headers["x-request-id"]


def test_stream_and_count_tokens_request_id(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    with claude.messages.stream(model=GPT, max_tokens=20, messages=MESSAGES) as stream:
        final = stream.get_final_message()
        assert stream.response.headers["request-id"].startswith("req_")
    assert final.content
    counted = claude.messages.count_tokens(model=GPT, messages=MESSAGES)
    assert counted._request_id is not None


def test_error_request_id(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=20, messages=MESSAGES)
    assert caught.value.request_id is not None
    models = http.get("/v1/models", headers={"anthropic-version": "2023-06-01", "x-api-key": "x"})
    assert models.headers["request-id"] == models.headers["x-request-id"]
