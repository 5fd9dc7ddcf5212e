"""Property-based fuzzing of the management API from its own OpenAPI document.

Generated requests (valid and invalid, one operation at a time and as chained scenarios)
go to a real gateway on a real port. Whatever they hold, the answer is never a 5xx, it
matches what the document promises (status codes, headers, bodies), and every error has
the OpenAI shape. Generation is derandomized, so a run is repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case, GenerationMode, Response

from checks import OPENAI_ERROR_KEYS, assert_no_leak
from fake_upstream import FakeUpstream
from harness import MASTER_KEY, GatewayServer, gateway_settings

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
# Bounded so this file runs in about half a minute.
EXAMPLES_PER_OPERATION = 40
SCENARIOS = 50
STEPS_PER_SCENARIO = 8

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "database": "none", "deterministic": True},
        "checks": {
            # False positives here, by design:
            # - "Schema-valid request rejected": many refusals depend on data the schema
            #   cannot describe: a project named in a body or query must exist, a
            #   project name must be free, a revoked key cannot be reactivated,
            #   expires_at must be in the future, 'from' must precede 'to', credentials
            #   must name a configured provider, text must not contain NUL, a budget has
            #   at most 10 decimal places (a float such as 5e-324 has hundreds).
            "positive_data_acceptance": {"enabled": False},
            # "Deleted resource still available": DELETE on a key or an admin key
            # revokes it; the row stays readable (status "revoked", active false) for
            # history and spend, as the routes document.
            "use_after_free": {"enabled": False},
        },
    }
)
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed_gateway(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway of its own: fuzzing deactivates projects and revokes keys at random."""
    settings_ = gateway_settings(fake_server, tmp_path_factory.mktemp("fuzz-data"))
    server = GatewayServer(settings_).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_gateway: GatewayServer) -> BaseSchema:
    """The management API's OpenAPI document, as the running gateway serves it."""
    return schemathesis.openapi.from_url(
        f"{fuzzed_gateway.url}/api/v1/openapi.json", config=CONFIG, timeout=10
    )


def assert_well_formed(response: Response) -> None:
    """No server error; an error answer is JSON in the OpenAI shape and leaks nothing."""
    assert response.status_code < 500, response.text
    assert_no_leak(response.content)
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (response.status_code, content_type)
    body: Any = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == OPENAI_ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation(api_schema: BaseSchema, mode: GenerationMode) -> None:
    # One Hypothesis run per operation (rather than schemathesis' pytest decorator, whose
    # lazy loading does not run on this pytest) so that each gets the same share.
    operations = [api_schema[path][method] for path in api_schema for method in api_schema[path]]
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (len(operation.query) or len(operation.body)):
            continue  # any text is a valid path segment: nothing here can be made invalid

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: Case[Any]) -> None:
            response = case.call(headers=AUTH, timeout=10)
            assert_well_formed(response)
            case.validate_response(response, headers=AUTH)

        call()


def test_scenarios(api_schema: BaseSchema) -> None:
    class Scenarios(api_schema.as_state_machine()):  # type: ignore[misc]
        """Chains of linked calls: create, read, update and delete the same resource."""

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": AUTH, "timeout": 10}

        def validate_response(
            self, response: Response, case: Case[Any], additional_checks: Any = None, **kwargs: Any
        ) -> None:
            assert_well_formed(response)
            super().validate_response(response, case, additional_checks, **kwargs)

    Scenarios.run(
        settings=settings(
            FUZZ_SETTINGS, max_examples=SCENARIOS, stateful_step_count=STEPS_PER_SCENARIO
        )
    )
