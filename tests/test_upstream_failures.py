"""Upstream trouble before any byte reached the client: the right status, in the
client's dialect, the right SDK exception, and never a credential or a stack trace."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from checks import anthropic_error, assert_no_leak, dialect_error, openai_error
from fake_upstream import (
    Behaviour,
    CutMidStream,
    Fail,
    FakeUpstream,
    Reset,
    Respond,
    Stall,
)
from harness import (
    ANTHROPIC_UPSTREAM_KEY,
    CLAUDE,
    CLAUDE_REFUSED,
    GPT,
    GPT_REFUSED,
    MASTER_KEY,
    OPENAI_UPSTREAM_KEY,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "Say hello."}]
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": GPT, "messages": MESSAGES}),
    "anthropic": ("/v1/messages", {"model": CLAUDE, "max_tokens": 20, "messages": MESSAGES}),
}
DIALECTS = list(CALLS)

# behaviour, gateway status, OpenAI error code, Anthropic error type
FAILURES: dict[str, tuple[Behaviour, int, str, str]] = {
    "500": (Fail(500), 502, "upstream_error", "api_error"),
    "502-html": (
        Respond(502, b"<html>Bad Gateway</html>", "text/html"),
        502,
        "upstream_error",
        "api_error",
    ),
    "503": (Fail(503), 503, "upstream_unavailable", "overloaded_error"),
    "529": (Fail(529, message="Overloaded"), 503, "upstream_unavailable", "overloaded_error"),
    "504": (Fail(504), 504, "upstream_timeout", "timeout_error"),
    "reset": (Reset(), 502, "upstream_error", "api_error"),
    "truncated-body": (CutMidStream(), 502, "upstream_error", "api_error"),
    "401": (Fail(401, message="Invalid authentication"), 502, "upstream_error", "api_error"),
    "403": (Fail(403, message="Forbidden"), 502, "upstream_error", "api_error"),
}


def call(http: httpx.Client, dialect: str, **changes: Any) -> httpx.Response:
    path, body = CALLS[dialect]
    return http.post(path, json={**body, **changes}, headers=AUTH)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_status_and_shape(
    http: httpx.Client, fake: FakeUpstream, dialect: str, case: str
) -> None:
    behaviour, status, openai_code, anthropic_type = FAILURES[case]
    fake.script(behaviour)
    error = dialect_error(dialect, call(http, dialect), status)
    if dialect == "openai":
        assert error["code"] == openai_code
        assert error["type"] == "server_error"
    else:
        assert error["type"] == anthropic_type
    assert fake.requests, "the call must have reached the upstream"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_401_says_nothing_about_the_key(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    key = OPENAI_UPSTREAM_KEY if dialect == "openai" else ANTHROPIC_UPSTREAM_KEY
    fake.script(Fail(401, message=f"Incorrect API key provided: {key}."))
    error = dialect_error(dialect, call(http, dialect), 502)
    assert "Incorrect API key" not in error["message"]
    assert "sk-" not in error["message"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("status", [400, 404, 422, 429, 500, 503])
def test_provider_key_in_upstream_message_never_reaches_client(
    http: httpx.Client, fake: FakeUpstream, dialect: str, status: int
) -> None:
    key = OPENAI_UPSTREAM_KEY if dialect == "openai" else ANTHROPIC_UPSTREAM_KEY
    masked = key[:8] + "*" * 20 + key[-4:]
    fake.script(Fail(status, message=f"Key {key} (shown as {masked}) is not allowed here."))
    response = call(http, dialect)
    assert response.status_code >= 400
    assert_no_leak(response.text)
    assert key[-4:] not in response.text


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "body",
    [
        f"upstream said: {OPENAI_UPSTREAM_KEY} {ANTHROPIC_UPSTREAM_KEY}",
        {"detail": f"bad key {OPENAI_UPSTREAM_KEY} {ANTHROPIC_UPSTREAM_KEY}"},
        {"message": f"bad key {OPENAI_UPSTREAM_KEY} {ANTHROPIC_UPSTREAM_KEY}"},
        {"error": f"bad key {OPENAI_UPSTREAM_KEY} {ANTHROPIC_UPSTREAM_KEY}"},
    ],
    ids=["text", "detail", "message", "error-string"],
)
def test_provider_key_in_odd_error_bodies_never_reaches_client(
    http: httpx.Client, fake: FakeUpstream, dialect: str, body: Any
) -> None:
    fake.script(Fail(500, body=body))
    dialect_error(dialect, call(http, dialect), 502)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_400_keeps_status_and_message(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    fake.script(Fail(400, message="max_tokens: 999999 > 8192, the maximum for this model"))
    error = dialect_error(dialect, call(http, dialect), 400)
    assert error["message"] == "max_tokens: 999999 > 8192, the maximum for this model"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_429_becomes_503_keeping_retry_after(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    fake.script(Fail(429, message="Rate limit reached", headers={"retry-after": "7"}))
    response = call(http, dialect)
    dialect_error(dialect, response, 503)
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_connection_refused_is_503(http: httpx.Client, fake: FakeUpstream, dialect: str) -> None:
    model = GPT_REFUSED if dialect == "openai" else CLAUDE_REFUSED
    started = time.monotonic()
    error = dialect_error(dialect, call(http, dialect, model=model), 503)
    assert time.monotonic() - started < 1.5
    if dialect == "openai":
        assert error["code"] == "upstream_unavailable"
    else:
        assert error["type"] == "overloaded_error"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_stall_before_headers_is_504(http: httpx.Client, fake: FakeUpstream, dialect: str) -> None:
    fake.script(Stall(30))
    started = time.monotonic()
    error = dialect_error(dialect, call(http, dialect), 504)
    # The read timeout is 2 s in the test settings.
    assert 1.5 < time.monotonic() - started < 6
    if dialect == "openai":
        assert error["code"] == "upstream_timeout"
    else:
        assert error["type"] == "timeout_error"


def test_stall_before_headers_of_a_stream_is_504(http: httpx.Client, fake: FakeUpstream) -> None:
    fake.script(Stall(30))
    response = call(http, "anthropic", stream=True)
    assert anthropic_error(response, 504)["type"] == "timeout_error"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("behaviour", "status"),
    [(Fail(500), 502), (Fail(529), 503), (Fail(400, message="no"), 400), (Reset(), 502)],
    ids=["500", "529", "400", "reset"],
)
def test_streamed_call_failing_before_first_byte_is_a_json_error(
    http: httpx.Client, fake: FakeUpstream, dialect: str, behaviour: Behaviour, status: int
) -> None:
    # Nothing was sent yet, so the error is a plain response, not an event stream.
    fake.script(behaviour)
    dialect_error(dialect, call(http, dialect, stream=True), status)


def test_count_tokens_upstream_failures(http: httpx.Client, fake: FakeUpstream) -> None:
    body = {"model": CLAUDE, "messages": MESSAGES}
    fake.script(Fail(500), path="/v1/messages/count_tokens")
    response = http.post("/v1/messages/count_tokens", json=body, headers=AUTH)
    assert anthropic_error(response, 502)["type"] == "api_error"
    fake.script(Fail(400, message="messages: bad"), path="/v1/messages/count_tokens")
    response = http.post("/v1/messages/count_tokens", json=body, headers=AUTH)
    assert anthropic_error(response, 400)["message"] == "messages: bad"


@pytest.mark.parametrize(
    ("behaviour", "exception"),
    [
        (Fail(400, message="bad request"), openai.BadRequestError),
        (Fail(401), openai.InternalServerError),
        (Fail(404, message="no such model upstream"), openai.NotFoundError),
        (Fail(422, message="unprocessable"), openai.UnprocessableEntityError),
        (Fail(429), openai.InternalServerError),
        (Fail(500), openai.InternalServerError),
        (Reset(), openai.InternalServerError),
    ],
    ids=lambda value: getattr(value, "__name__", type(value).__name__),
)
def test_openai_sdk_exception_classes(
    oai: openai.OpenAI, fake: FakeUpstream, behaviour: Behaviour, exception: type[Exception]
) -> None:
    fake.script(behaviour)
    with pytest.raises(exception) as caught:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert_no_leak(caught.value.response.text)


@pytest.mark.parametrize(
    ("behaviour", "exception"),
    [
        (Fail(400, message="bad request"), anthropic.BadRequestError),
        (Fail(401), anthropic.InternalServerError),
        (Fail(404, message="no such model upstream"), anthropic.NotFoundError),
        (Fail(429), anthropic.ServiceUnavailableError),
        (Fail(500), anthropic.InternalServerError),
        (Fail(529), anthropic.ServiceUnavailableError),
        (Fail(504), anthropic.GatewayTimeoutError),
        (Reset(), anthropic.InternalServerError),
    ],
    ids=lambda value: getattr(value, "__name__", type(value).__name__),
)
def test_anthropic_sdk_exception_classes(
    claude: anthropic.Anthropic,
    fake: FakeUpstream,
    behaviour: Behaviour,
    exception: type[Exception],
) -> None:
    fake.script(behaviour)
    with pytest.raises(exception) as caught:
        claude.messages.create(model=CLAUDE, max_tokens=20, messages=MESSAGES)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert_no_leak(caught.value.response.text)


def test_gateway_recovers_after_failures(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.script(Reset(), CutMidStream(), Fail(500))
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert oai.chat.completions.create(model=GPT, messages=MESSAGES).choices


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_200_html_is_502(http: httpx.Client, fake: FakeUpstream, dialect: str) -> None:
    # An HTML page from a captive proxy or a wrong base_url is upstream garbage.
    fake.script(Respond(200, b"<html><body>Please log in</body></html>", "text/html"))
    error = dialect_error(dialect, call(http, dialect), 502)
    assert "base_url" in error["message"]


@pytest.mark.parametrize("body", [b"{not json", b""], ids=["broken-json", "empty"])
def test_upstream_200_with_unparseable_json_is_502(
    http: httpx.Client, fake: FakeUpstream, body: bytes
) -> None:
    fake.script(Respond(200, body, "application/json"))
    openai_error(call(http, "openai"), 502)


@pytest.mark.parametrize("status", [301, 307])
def test_upstream_redirect_is_502(http: httpx.Client, fake: FakeUpstream, status: int) -> None:
    location = {"location": "https://api.example.com/v1/chat/completions"}
    fake.script(Respond(status, b'{"moved": true}', "application/json", headers=location))
    openai_error(call(http, "openai"), 502)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_answer_without_usage_is_not_priced_at_zero(
    http: httpx.Client, fake: FakeUpstream, dialect: str
) -> None:
    fake.script(Respond(200, b'{"id": "x", "choices": [], "content": []}', "application/json"))
    response = call(http, dialect)
    assert response.status_code == 200
    cost = response.headers["x-tollway-cost-usd"]
    assert cost == "unknown" or float(cost) > 0
