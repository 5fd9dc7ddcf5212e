"""Turning tracing on: the ``telemetry`` section, the standard ``OTEL_*`` variables, and
no OpenTelemetry SDK at all when tracing is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from otlp_receiver import SERVER, OtlpReceiver

from fake_upstream import FakeUpstream
from harness import GPT, GPT_UPSTREAM, MASTER_KEY, OPENAI_UPSTREAM_KEY, running_gateway
from tollway.settings import ConfigError, Settings, load_settings

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sets exactly the variables it is about."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield


def config_file(tmp_path: Path, fake: FakeUpstream, **sections: object) -> Path:
    """A YAML config in front of ``fake``, with ``sections`` added."""
    config = {
        "master_key": MASTER_KEY,
        "data_dir": str(tmp_path / "data"),
        "providers": {
            "oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": OPENAI_UPSTREAM_KEY}
        },
        "models": [{"name": GPT, "provider": "oa", "model": GPT_UPSTREAM}],
        **sections,
    }
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_otel_variables_turn_tracing_on(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = OtlpReceiver().start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + "/")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team=llm")
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20collector-token,x-tenant=acme"
        )
        settings = load_settings(config_file(tmp_path, fake))
        telemetry = settings.telemetry
        assert telemetry.traces_url == receiver.url + "/v1/traces"
        assert telemetry.service_name == "gateway-from-env"
        assert telemetry.resource_attributes == {"deployment.environment": "ci", "team": "llm"}
        assert {k: v.get_secret_value() for k, v in telemetry.headers.items()} == {
            "authorization": "Bearer collector-token",
            "x-tenant": "acme",
        }
        assert "collector-token" not in repr(settings)
        with running_gateway(settings) as gateway:
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": GPT, "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {MASTER_KEY}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
        [call] = [span for span in receiver.spans if span.kind == SERVER]
    finally:
        receiver.stop()
    assert call.name == f"chat {GPT}"
    assert call.resource["service.name"] == "gateway-from-env"
    assert call.resource["deployment.environment"] == "ci"
    [export] = receiver.exports
    assert export.headers["authorization"] == "Bearer collector-token"
    assert export.headers["x-tenant"] == "acme"
    assert export.headers["content-type"] == "application/x-protobuf"


def test_the_file_wins_over_the_otel_variables_and_tollway_variables_over_both(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env-collector:4318/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-token=env,x-env-only=1")
    section = {
        "otlp_endpoint": "http://file-collector:4318",
        "service_name": "from-file",
        "headers": {"x-token": "file"},
    }
    telemetry = load_settings(config_file(tmp_path, fake, telemetry=section)).telemetry
    assert telemetry.traces_url == "http://file-collector:4318/v1/traces"
    assert telemetry.service_name == "from-file"
    headers = {k: v.get_secret_value() for k, v in telemetry.headers.items()}
    assert headers == {"x-token": "file", "x-env-only": "1"}

    monkeypatch.setenv("TOLLWAY_TELEMETRY__SERVICE_NAME", "from-tollway-env")
    telemetry = load_settings(config_file(tmp_path, fake, telemetry=section)).telemetry
    assert telemetry.service_name == "from-tollway-env"
    assert telemetry.traces_url == "http://file-collector:4318/v1/traces"


@pytest.mark.parametrize(
    ("variables", "url"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/otlp/"}, "https://c/otlp/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/x"}, "http://c:4318/x"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces",
            },
            "http://traces:4318/v1/traces",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
            | {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
            "http://c:4318/v1/traces",
        ),
    ],
)
def test_where_spans_go(
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    url: str | None,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings(config_file(tmp_path, fake)).telemetry.traces_url == url


def test_the_file_endpoint_may_be_the_full_traces_url() -> None:
    settings = Settings(telemetry={"otlp_endpoint": "http://c:4318/v1/traces/"})
    assert settings.telemetry.traces_url == "http://c:4318/v1/traces"
    assert (
        Settings(
            telemetry={"otlp_endpoint": "http://c:4318", "enabled": False}
        ).telemetry.traces_url
        is None
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: Tollway exports traces over http/protobuf only",
        ),
        (
            {"OTEL_EXPORTER_OTLP_HEADERS": "authorization: Bearer very-secret"},
            "OTEL_EXPORTER_OTLP_HEADERS: give key=value pairs",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "telemetry.otlp_endpoint"),
    ],
)
def test_bad_otel_variables_stop_startup_naming_them(
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    message: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(config_file(tmp_path, fake))
    assert "very-secret" not in str(raised.value)


def test_a_grpc_protocol_is_no_concern_while_tracing_is_off(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert load_settings(config_file(tmp_path, fake)).telemetry.traces_url is None


_IMPORTS = """
import json, sys
from pathlib import Path

import fastapi  # the web framework loads the OpenTelemetry API by itself

baseline = {name for name in sys.modules if name.startswith("opentelemetry")}
from tollway.app import create_app
from tollway.settings import Settings

telemetry = json.loads(sys.argv[2])
create_app(Settings(master_key="sk-tw-master-imports-0000000000", data_dir=Path(sys.argv[1]),
                    telemetry=telemetry))
loaded = {name for name in sys.modules if name.startswith("opentelemetry")} - baseline
print(json.dumps({"loaded": sorted(loaded), "tracing": "tollway.telemetry.tracing" in sys.modules}))
"""


def _modules_loaded(tmp_path: Path, telemetry: dict[str, str]) -> dict[str, object]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOLLWAY_", "OTEL_"))
    }
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, str(tmp_path), json.dumps(telemetry)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_tracing_the_sdk_is_never_imported(tmp_path: Path) -> None:
    off = _modules_loaded(tmp_path / "off", {})
    assert off == {"loaded": [], "tracing": False}
    # The same check sees the SDK when tracing is on.
    on = _modules_loaded(tmp_path / "on", {"otlp_endpoint": "http://127.0.0.1:9"})
    assert on["tracing"] is True
    assert "opentelemetry.sdk.trace" in on["loaded"]  # type: ignore[operator]
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in on["loaded"]  # type: ignore[operator]
