"""Bad input on every proxy endpoint gets a clear 4xx in the endpoint's dialect: never a
500, always with an ``x-request-id``, and nothing is forwarded upstream."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from checks import anthropic_error, dialect_error, openai_error
from fake_upstream import FakeUpstream
from harness import CLAUDE, EMBED, GPT, MASTER_KEY, GatewayServer, gateway_settings

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]

# path -> (dialect, a valid body)
ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "/v1/chat/completions": ("openai", {"model": GPT, "messages": MESSAGES}),
    "/v1/completions": ("openai", {"model": GPT, "prompt": "hi"}),
    "/v1/embeddings": ("openai", {"model": EMBED, "input": "hi"}),
    "/v1/responses": ("openai", {"model": GPT, "input": "hi"}),
    "/v1/messages": ("anthropic", {"model": CLAUDE, "max_tokens": 10, "messages": MESSAGES}),
    "/v1/messages/count_tokens": ("anthropic", {"model": CLAUDE, "messages": MESSAGES}),
}
PATHS = list(ENDPOINTS)

RAW_BODIES = {
    "malformed": b'{"model": "gpt-test", "messages": [',
    "trailing-comma": b'{"model": "gpt-test",}',
    "array": b"[1, 2, 3]",
    "string": b'"hello"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
    "whitespace": b"  \n ",
    "invalid-utf8": b'{"model": "\xff\xfe"}',
    "deep-nesting": b'{"model": "gpt-test", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nan": b'{"model": "gpt-test", "temperature": NaN}',
}


def post(http: httpx.Client, path: str, body: Any, headers: dict[str, str] | None = None):
    """POST a JSON-serialisable body (or raw bytes) with the master key."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    merged = {**AUTH, "content-type": "application/json", **(headers or {})}
    return http.post(path, content=content, headers=merged)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_unparseable_bodies(http: httpx.Client, fake: FakeUpstream, path: str, case: str) -> None:
    dialect, _ = ENDPOINTS[path]
    error = dialect_error(dialect, post(http, path, RAW_BODIES[case]), 400)
    assert error["type"] == "invalid_request_error"
    assert fake.requests == []


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "model", [42, None, "", ["gpt-test"], {"name": "gpt-test"}, True], ids=repr
)
def test_model_of_the_wrong_type(
    http: httpx.Client, fake: FakeUpstream, path: str, model: Any
) -> None:
    dialect, body = ENDPOINTS[path]
    error = dialect_error(dialect, post(http, path, {**body, "model": model}), 400)
    if dialect == "openai":
        assert error["param"] == "model"
    assert "model" in error["message"]
    assert fake.requests == []


@pytest.mark.parametrize("path", PATHS)
def test_missing_model(http: httpx.Client, fake: FakeUpstream, path: str) -> None:
    dialect, body = ENDPOINTS[path]
    without = {k: v for k, v in body.items() if k != "model"}
    error = dialect_error(dialect, post(http, path, without), 400)
    assert "model" in error["message"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", ["no-such-model", "gpt-test ", "../../etc/passwd", "x" * 200])
def test_unknown_model_is_404_naming_it(
    http: httpx.Client, fake: FakeUpstream, path: str, model: str
) -> None:
    dialect, body = ENDPOINTS[path]
    error = dialect_error(dialect, post(http, path, {**body, "model": model}), 404)
    assert model in error["message"]
    if dialect == "openai":
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
    else:
        assert error["type"] == "not_found_error"
    assert fake.requests == []


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", ["x" * 201, "gpt\x00test", "gpt\ntest", "a\x7fb", "c\x85d"])
def test_out_of_bounds_model_name_is_400_naming_it(
    http: httpx.Client, fake: FakeUpstream, path: str, model: str
) -> None:
    # Too long or with control characters: refused before anything is journaled.
    dialect, body = ENDPOINTS[path]
    error = dialect_error(dialect, post(http, path, {**body, "model": model}), 400)
    assert "model" in error["message"]
    if dialect == "openai":
        assert error["param"] == "model"
    assert fake.requests == []


# path, field changes, the field the error must name
WRONG_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [1]}, "messages"),
    ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, "role"),
    ("/v1/chat/completions", {"messages": None}, "messages"),
    ("/v1/chat/completions", {"stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"stream": 1}, "stream"),
    ("/v1/chat/completions", {"max_tokens": -1}, "max_tokens"),
    ("/v1/chat/completions", {"max_tokens": 0}, "max_tokens"),
    ("/v1/chat/completions", {"max_tokens": "10"}, "max_tokens"),
    ("/v1/chat/completions", {"max_tokens": 1.5}, "max_tokens"),
    ("/v1/chat/completions", {"max_completion_tokens": -5}, "max_completion_tokens"),
    ("/v1/chat/completions", {"temperature": "hot"}, "temperature"),
    ("/v1/chat/completions", {"n": 0}, "n"),
    ("/v1/chat/completions", {"stream_options": "usage"}, "stream_options"),
    ("/v1/completions", {"prompt": None}, "prompt"),
    ("/v1/completions", {"prompt": 42}, "prompt"),
    ("/v1/completions", {"stream": "yes"}, "stream"),
    ("/v1/completions", {"max_tokens": "10"}, "max_tokens"),
    ("/v1/embeddings", {"input": None}, "input"),
    ("/v1/embeddings", {"input": 42}, "input"),
    ("/v1/embeddings", {"dimensions": 0}, "dimensions"),
    ("/v1/responses", {"input": 42}, "input"),
    ("/v1/responses", {"stream": "yes"}, "stream"),
    ("/v1/responses", {"max_output_tokens": -1}, "max_output_tokens"),
    ("/v1/messages", {"messages": "hi"}, "messages"),
    ("/v1/messages", {"messages": None}, "messages"),
    ("/v1/messages", {"max_tokens": None}, "max_tokens"),
    ("/v1/messages", {"max_tokens": -1}, "max_tokens"),
    ("/v1/messages", {"max_tokens": "10"}, "max_tokens"),
    ("/v1/messages", {"stream": "yes"}, "stream"),
    ("/v1/messages", {"system": 42}, "system"),
    ("/v1/messages", {"top_k": -1}, "top_k"),
    ("/v1/messages", {"metadata": "x"}, "metadata"),
    ("/v1/messages/count_tokens", {"messages": None}, "messages"),
    ("/v1/messages/count_tokens", {"messages": "hi"}, "messages"),
    ("/v1/messages/count_tokens", {"system": 42}, "system"),
]


@pytest.mark.parametrize(
    ("path", "changes", "field"),
    WRONG_FIELDS,
    ids=[f"{p.removeprefix('/v1/')}-{orjson.dumps(c).decode()}" for p, c, _ in WRONG_FIELDS],
)
def test_wrong_or_missing_fields(
    http: httpx.Client, fake: FakeUpstream, path: str, changes: dict[str, Any], field: str
) -> None:
    dialect, body = ENDPOINTS[path]
    merged = {**body, **changes}
    merged = {k: v for k, v in merged.items() if v is not None}
    error = dialect_error(dialect, post(http, path, merged), 400)
    assert field in error["message"]
    if dialect == "openai":
        assert error["param"] is not None and field in error["param"]
    assert fake.requests == []


# --------------------------------------------------------------------------- routes


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405(http: httpx.Client, path: str, method: str) -> None:
    dialect, _ = ENDPOINTS[path]
    response = http.request(method, path, headers=AUTH)
    dialect_error(dialect, response, 405)


@pytest.mark.parametrize("path", PATHS)
def test_405_names_the_allowed_method(http: httpx.Client, path: str) -> None:
    # RFC 9110 section 15.5.6: a 405 carries an Allow header.
    response = http.get(path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST, OPTIONS"  # OPTIONS: CORS preflights


def test_post_on_models_is_405(http: httpx.Client) -> None:
    openai_error(http.post("/v1/models", headers=AUTH, json={}), 405)


@pytest.mark.parametrize(
    "path", ["/v1/chat/completion", "/v1/files", "/v1/messages/batches", "/v1/", "/v1/x/y/z"]
)
def test_unknown_v1_route_is_404_json(http: httpx.Client, path: str) -> None:
    openai_error(http.post(path, headers=AUTH, json={}), 404)
    response = http.post(path, headers={**AUTH, "anthropic-version": "2023-06-01"}, json={})
    anthropic_error(response, 404)


def test_unknown_route_outside_v1(http: httpx.Client) -> None:
    response = http.get("/nope", headers=AUTH)
    assert response.status_code == 404
    assert response.headers["x-request-id"].startswith("req_")
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/completions", CLAUDE),
        ("/v1/embeddings", CLAUDE),
    ],
)
def test_endpoint_not_offered_by_the_models_provider(
    http: httpx.Client, fake: FakeUpstream, path: str, model: str
) -> None:
    dialect, body = ENDPOINTS[path]
    error = dialect_error(dialect, post(http, path, {**body, "model": model}), 400)
    assert model in error["message"]
    provider = "an" if model.startswith("claude") else "oa"
    assert f"'{provider}'" in error["message"]
    assert fake.requests == []


def test_responses_on_an_anthropic_model_is_translated(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    # Once a 400 (Anthropic serves no Responses API), now translated through chat.
    _, body = ENDPOINTS["/v1/responses"]
    response = post(http, "/v1/responses", {**body, "model": "claude-glob-1"})
    assert response.status_code == 200, response.text
    assert [r.path for r in fake.requests] == ["/v1/messages"]


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("path", PATHS)
def test_no_key_is_401(http: httpx.Client, fake: FakeUpstream, path: str) -> None:
    dialect, body = ENDPOINTS[path]
    response = http.post(path, json=body)
    error = dialect_error(dialect, response, 401)
    assert error["type"] == ("authentication_error")
    assert fake.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer sk-wrong-key"},
        {"authorization": f"Bearer {MASTER_KEY}x"},
        {"authorization": f"Bearer {MASTER_KEY[:-1]}"},
        {"x-api-key": "sk-tw-" + "A" * 43},
        {"x-api-key": "k" * 16_000},
        {"authorization": "Bearer"},
    ],
    ids=["wrong", "longer", "shorter", "virtual-shaped", "huge", "empty-bearer"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_wrong_key_is_401(
    http: httpx.Client, fake: FakeUpstream, path: str, headers: dict[str, str]
) -> None:
    dialect, body = ENDPOINTS[path]
    dialect_error(dialect, http.post(path, json=body, headers=headers), 401)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"x-auth-token": MASTER_KEY}, ""),
        ({"authorization": MASTER_KEY}, ""),
        ({"authorization": f"Token {MASTER_KEY}"}, ""),
        ({"authorization": "Basic " + base64.b64encode(f"u:{MASTER_KEY}".encode()).decode()}, ""),
        ({"proxy-authorization": f"Bearer {MASTER_KEY}"}, ""),
        ({"cookie": f"api_key={MASTER_KEY}"}, ""),
        ({}, f"?api_key={MASTER_KEY}"),
        ({}, f"?key={MASTER_KEY}"),
    ],
    ids=["x-auth-token", "bare", "token", "basic", "proxy", "cookie", "q-api_key", "q-key"],
)
def test_key_in_unsupported_place_is_401(
    http: httpx.Client, headers: dict[str, str], query: str
) -> None:
    _, body = ENDPOINTS["/v1/chat/completions"]
    openai_error(http.post("/v1/chat/completions" + query, json=body, headers=headers), 401)


def test_non_ascii_key_is_401(http: httpx.Client) -> None:
    _, body = ENDPOINTS["/v1/messages"]
    headers = {"x-api-key": "cl\u00e9-\u00fc".encode("latin-1")}
    anthropic_error(http.post("/v1/messages", json=body, headers=headers), 401)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {MASTER_KEY}"},
        {"authorization": f"bearer {MASTER_KEY}"},
        {"x-api-key": MASTER_KEY},
        {"api-key": MASTER_KEY},
        {"x-goog-api-key": MASTER_KEY},
    ],
    ids=["bearer", "bearer-lower", "x-api-key", "api-key", "x-goog-api-key"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_key_accepted_in_each_sdk_header(
    http: httpx.Client, fake: FakeUpstream, path: str, headers: dict[str, str]
) -> None:
    _, body = ENDPOINTS[path]
    response = http.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"].startswith("req_")


def test_openai_sdk_exceptions_for_gateway_errors(
    gateway: GatewayServer, oai: openai.OpenAI, fake: FakeUpstream
) -> None:
    stranger = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        stranger.chat.completions.create(model=GPT, messages=MESSAGES)
    assert denied.value.response.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    stranger.close()

    with pytest.raises(openai.NotFoundError) as missing:
        oai.chat.completions.create(model="gpt-nowhere", messages=MESSAGES)
    assert "gpt-nowhere" in missing.value.message
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="gpt-nowhere", messages=MESSAGES, stream=True)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model=GPT, messages=[])
    assert bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model=CLAUDE, input="x")
    assert fake.requests == []


def test_anthropic_sdk_exceptions_for_gateway_errors(
    gateway: GatewayServer, claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    stranger = anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        stranger.messages.create(model=CLAUDE, max_tokens=5, messages=MESSAGES)
    stranger.close()

    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="mystery-model", max_tokens=5, messages=MESSAGES)
    assert "mystery-model" in str(missing.value)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="mystery-model", messages=MESSAGES)
    with (
        pytest.raises(anthropic.BadRequestError),
        claude.messages.stream(model=CLAUDE, max_tokens=0, messages=MESSAGES) as stream,
    ):
        stream.get_final_message()
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model=CLAUDE, max_tokens=5, messages="hi")  # type: ignore[arg-type]
    assert fake.requests == []


def test_sdks_see_413(small_gateway: GatewayServer, fake: FakeUpstream) -> None:
    huge = "x" * (2 * LIMIT)
    with (
        openai.OpenAI(
            base_url=small_gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0
        ) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": huge}])
    assert caught.value.status_code == 413
    with (
        anthropic.Anthropic(base_url=small_gateway.url, api_key=MASTER_KEY, max_retries=0) as other,
        pytest.raises(anthropic.APIStatusError) as refused,
    ):
        other.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": huge}]
        )
    assert refused.value.status_code == 413
    assert fake.requests == []


def test_models_list_needs_a_key(http: httpx.Client) -> None:
    openai_error(http.get("/v1/models"), 401)
    anthropic_error(http.get("/v1/models", headers={"anthropic-version": "2023-06-01"}), 401)
    assert http.get("/v1/models", headers={"x-api-key": MASTER_KEY}).status_code == 200


# --------------------------------------------------------------------------- body size

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_gateway(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway whose request body limit is 64 KiB."""
    data_dir: Path = tmp_path_factory.mktemp("small-gateway")
    settings = gateway_settings(fake_server, data_dir, max_body_bytes=LIMIT)
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def small(small_gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_gateway.url, timeout=10) as client:
        yield client


def padded(path: str, size: int) -> bytes:
    """A valid body for ``path`` of exactly ``size`` bytes."""
    _, body = ENDPOINTS[path]
    base = orjson.dumps({**body, "metadata_pad": ""})
    pad = size - len(base)
    assert pad >= 0
    return orjson.dumps({**body, "metadata_pad": "x" * pad})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_body_at_the_limit_passes(small: httpx.Client, fake: FakeUpstream, path: str) -> None:
    body = padded(path, LIMIT)
    assert len(body) == LIMIT
    response = small.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_content_length_over_the_limit_is_413(
    small: httpx.Client, fake: FakeUpstream, path: str
) -> None:
    dialect, _ = ENDPOINTS[path]
    body = padded(path, LIMIT + 1)
    response = small.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    error = dialect_error(dialect, response, 413)
    assert str(LIMIT) in error["message"]
    assert fake.requests == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_chunked_body_over_the_limit_is_413(
    small: httpx.Client, fake: FakeUpstream, path: str
) -> None:
    dialect, _ = ENDPOINTS[path]
    body = padded(path, 4 * LIMIT)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = small.post(
        path, content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    dialect_error(dialect, response, 413)
    assert fake.requests == []


def test_huge_declared_length_is_refused_before_reading(small_gateway: GatewayServer) -> None:
    # Announce a terabyte and send nothing: the answer must come from the header alone.
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000000000000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", small_gateway.port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), reply[:300]


# --------------------------------------------------------------------------- raw HTTP


def exchange(port: int, data: bytes, responses: int, timeout: float = 5.0) -> bytes:
    """Send raw bytes on one connection and read until ``responses`` complete answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < responses or not _complete(received, responses):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _complete(data: bytes, responses: int) -> bool:
    """Whether the last of ``responses`` Content-Length framed answers is all there."""
    start = -1
    for _ in range(responses):
        start = data.find(b"HTTP/1.1 ", start + 1)
        if start < 0:
            return False
    head_end = data.find(b"\r\n\r\n", start)
    if head_end < 0:
        return False
    head = data[start:head_end].lower()
    length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    return len(data) >= head_end + 4 + length


def request_bytes(body: bytes, key: str | None = MASTER_KEY, extra: str = "") -> bytes:
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


VALID = orjson.dumps(ENDPOINTS["/v1/chat/completions"][1])
# A request hidden in a body: it must never be parsed as a request of its own.
SMUGGLED = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_expect_100_continue(gateway: GatewayServer, fake: FakeUpstream) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        head = request_bytes(VALID, extra="Expect: 100-continue\r\n")[: -len(VALID)]
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(VALID)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ")


def test_rejected_body_is_skipped_not_parsed_as_a_request(
    gateway: GatewayServer, fake: FakeUpstream
) -> None:
    # A 401 is answered before the body is read; the connection must still frame the
    # body by its Content-Length and serve the next request on the same connection.
    hidden = b"x" * 300_000 + SMUGGLED
    data = request_bytes(hidden, key=None) + request_bytes(VALID)
    reply = exchange(gateway.port, data, responses=2)
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert reply.count(b"HTTP/1.1 ") == 2
    assert b'"status":"ok"' not in reply
    assert reply[reply.rindex(b"HTTP/1.1 ") :].startswith(b"HTTP/1.1 200 ")
    assert len(fake.requests) == 1


def test_oversized_body_is_not_parsed_as_a_request(
    small_gateway: GatewayServer, fake: FakeUpstream
) -> None:
    hidden = b"x" * (2 * LIMIT) + SMUGGLED
    reply = exchange(small_gateway.port, request_bytes(hidden) + request_bytes(VALID), 2)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'"status":"ok"' not in reply
    # Either the connection is closed after the 413 or the next request is served.
    if reply.count(b"HTTP/1.1 ") == 2:
        assert reply[reply.rindex(b"HTTP/1.1 ") :].startswith(b"HTTP/1.1 200 ")
