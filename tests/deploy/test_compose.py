"""deploy/compose.yaml: valid under the Compose Specification's JSON schema (the copy
check-jsonschema ships), and laid out as README says: two gateway replicas behind HAProxy,
Postgres and Redis, migrations run once before any gateway, secrets from files,
healthchecks, a data volume. Without a Docker daemon, this is as far as it is checked."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DEPLOY, REPO, final_stage, image_env

from tollway.settings import load_settings

COMPOSE = DEPLOY / "compose.yaml"
HAPROXY = DEPLOY / "haproxy.cfg"
CONFIG = DEPLOY / "tollway.yaml"


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's schema, as vendored by check-jsonschema."""
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text("utf-8"))
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    """What the schema finds wrong with ``document``."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # PyYAML resolves the `<<: *tollway` merge keys, as Compose does.
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["gateway"]["read_olny"] = True
    assert len(schema_errors(broken)) == 2


def test_two_gateway_replicas_behind_the_load_balancer(services: dict[str, Any]) -> None:
    assert set(services) == {"migrate", "gateway", "lb", "postgres", "redis"}
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    assert gateway["command"] == ["serve"]
    assert "ports" not in gateway  # reached through the load balancer only
    lb = services["lb"]
    assert lb["image"].startswith("haproxy:")
    assert lb["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    (published,) = lb["ports"]
    assert published.endswith(":8080")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]


def test_migrations_run_once_before_the_gateways(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["gateway"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # Same image and the same config as the gateways: the same database URL.
    assert migrate["image"] == services["gateway"]["image"]
    assert migrate["build"] == services["gateway"]["build"] == {"context": ".."}
    config_mount = "./tollway.yaml:/etc/tollway/tollway.yaml:ro"
    assert config_mount in migrate["volumes"] and config_mount in services["gateway"]["volumes"]


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name in ("lb", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    # The gateway keeps the image's own test (GET /health/live), with its own timing.
    assert "test" not in services["gateway"]["healthcheck"]
    assert "/health/live" in " ".join(_image_healthcheck())


def _image_healthcheck() -> list[str]:
    (healthcheck,) = [i for i in final_stage() if i.keyword == "HEALTHCHECK"]
    return healthcheck.exec_form()


def test_the_gateways_run_hardened_with_a_data_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    data_dir = PurePosixPath(image_env()["TOLLWAY_DATA_DIR"])
    for name in ("gateway", "migrate"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    volume = f"tollway-data:{data_dir.parent}"
    assert volume in services["gateway"]["volumes"]
    assert set(compose["volumes"]) == {"tollway-data", "postgres-data", "redis-data"}
    assert compose["networks"]["data"]["internal"] is True
    for name in ("postgres", "redis"):
        assert services[name]["networks"] == ["data"], name
        assert "ports" not in services[name], name


def test_secrets_are_files_that_are_never_committed(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    for name, secret in compose["secrets"].items():
        assert secret["file"] == f"./secrets/{name}"
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name, service in services.items():
        granted = set(service.get("secrets", []))
        for variable, value in service.get("environment", {}).items():
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, variable)
                assert PurePosixPath(value).name in granted, (name, variable)
            else:
                assert not re.search(r"(KEY|TOKEN|SECRET|PASSWORD)$", variable), (name, variable)


def test_the_config_refers_only_to_variables_the_services_give(
    services: dict[str, Any],
) -> None:
    values = json.dumps(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))  # no comments
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", values))
    assert referenced == {"POSTGRES_PASSWORD", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"}
    for name in ("gateway", "migrate"):
        given = {v.removesuffix("_FILE") for v in services[name]["environment"]}
        assert referenced <= given, name
    # Postgres is given the same password file the gateways build their URL from.
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_the_config_is_one_the_gateway_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # no ./tollway.yaml of the repository's own
    for name, value in {
        "POSTGRES_PASSWORD": "pw",
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(CONFIG)
    assert settings.database_url == "postgresql://tollway:pw@postgres:5432/tollway"
    assert settings.redis_url == "redis://redis:6379/0"
    assert set(settings.providers) == {"openai", "anthropic"}


def test_haproxy_balances_over_the_ready_gateways(services: dict[str, Any]) -> None:
    lines = [
        line.split("#")[0].strip()
        for line in HAPROXY.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    port = image_env()["TOLLWAY_PORT"]
    assert "bind :8080" in lines
    assert "http-check send meth GET uri /health/ready" in lines
    assert "http-check expect status 200" in lines
    (template,) = [line for line in lines if line.startswith("server-template ")]
    # Docker's DNS answers every replica of the `gateway` service.
    assert f" gateway:{port} " in f" {template} "
    assert "resolvers docker" in template and "check" in template.split()
    assert "nameserver dns 127.0.0.11:53" in lines
    # A request to a replica that is going away, before its checks fail, goes to another.
    assert "option redispatch 1" in lines
    # The load balancer's own healthcheck asks its monitor frontend.
    assert "monitor-uri /healthz" in lines
    assert "http://127.0.0.1:8404/healthz" in services["lb"]["healthcheck"]["test"]
    assert "bind :8404" in lines
