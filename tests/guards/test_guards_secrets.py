"""The secrets guard: each credential format found with a span that is exactly the
secret (so redaction removes it and nothing else), and look-alikes left alone."""

from __future__ import annotations

import base64
import json

import pytest

from tollway.guards.redact import redact
from tollway.guards.secrets import KINDS, SecretsGuard, entropy

GUARD = SecretsGuard({})


def found(text: str, guard: SecretsGuard = GUARD) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in guard.scan(text)]


def _jwt(header: dict[str, str], payload: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(payload)}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


JWT = _jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "1234567890", "name": "John Doe"})
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
# (kind, the secret, a line that holds it)
CASES = [
    (
        "openai_key",
        "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMn",
        'OPENAI_API_KEY="{}"',
    ),
    ("openai_key", "sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJ0123456789abcdefghijkl", "key: {}"),
    ("anthropic_key", "sk-ant-api03-" + "Ab3d_Ef-Gh1j" * 8 + "AA", "x-api-key: {}"),
    ("google_api_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "?key={}&q=1"),
    ("google_oauth_secret", "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", "client_secret={}"),
    ("github_token", "ghp_" + "a1B2c3D4e5F6" * 3, "git clone https://{}@github.com/x/y"),
    ("github_token", "github_pat_11ABCDEFG0" + "aB3" * 20 + "x", "GH_TOKEN={}"),
    ("gitlab_token", "glpat-AbCdEf123456_GhIjKlM", "PRIVATE-TOKEN: {}"),
    ("slack_token", "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "token {}."),
    (
        "slack_webhook",
        "https://hooks.slack.com/services/T0001/B0002/AbCdEfGhIjKlMnOpQrStUvWx",
        "POST {}",
    ),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Stripe.api_key = '{}'"),
    ("stripe_key", "rk_test_51H8abcDEFghiJKLmnoPQR", "{}"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id = {}"),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = {}"),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", '"SecretAccessKey": "{}"'),
    (
        "azure_key",
        "Ab12" * 21 + "Ab==",
        "DefaultEndpointsProtocol=https;AccountKey={};EndpointSuffix=x",
    ),
    ("azure_client_secret", "abc8Q~Abcdefghijklmnopqrstuvwxyz01234567", 'AZURE_CLIENT_SECRET="{}"'),
    ("huggingface_token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "HF_TOKEN={}"),
    ("npm_token", "npm_" + "aB3dE" * 7 + "x", "//registry.npmjs.org/:_authToken={}"),
    ("pypi_token", "pypi-AgEIcHlwaS5vcmc" + "CJDQ3ZjI5" * 8, "password = {}"),
    ("sendgrid_key", "SG." + "aB3dEfGh1jKlMnOpQrStUv" + "." + "x" * 43, "SENDGRID={}"),
    ("private_key", PEM, "key:\n{}\n"),
    ("jwt", JWT, "Cookie: session={}; Path=/"),
    ("url_credentials", "S3cr3t-Pw", "DATABASE_URL=postgres://admin:{}@db.internal:5432/app"),
    ("url_credentials", "pa55word", "redis://:{}@localhost:6379/0"),
    ("authorization", "abcdef0123456789abcdef0123456789", "Authorization: Bearer {}"),
    ("assigned_secret", "hunter2!Abc", 'password = "{}"'),
    (
        "assigned_secret",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "SECRET_KEY={}",
    ),
    ("assigned_secret", "q8Zr2LmX0pT7vW4yB9nC3dF6", 'api_token: "{}"'),
]


@pytest.mark.parametrize(("kind", "secret", "line"), CASES, ids=[c[0] for c in CASES])
def test_each_format_is_found_with_its_exact_span(kind: str, secret: str, line: str) -> None:
    text = "some text before\n" + line.format(secret) + "\nand after"
    assert found(text) == [(kind, secret)]
    redacted = redact(text, GUARD.scan(text), GUARD)
    assert secret not in redacted
    assert redacted == text.replace(secret, f"[REDACTED:{kind}]")


@pytest.mark.parametrize(
    "text",
    [
        "the scikit package sk-learn-compatible-estimator-wrapper works",
        "task-management and desk-booking, risk-free",
        "api_key: Optional[str] = None",
        'token = os.environ["TOKEN"]',
        "password = get_password(user)",
        "secret_key = settings.SECRET_KEY",
        "API_KEY=your-api-key-here and TOKEN=<token> and PASSWORD=${DB_PASSWORD}",
        'password: "changeme", secret: "xxxxxxxxxxxxxxxx"',
        "max_tokens: 1024, tokens_per_minute: 90000",
        "postgres://user:password@localhost/db and https://example.com:8080/path",
        "uuid 550e8400-e29b-41d4-a716-446655440000 sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "eyJhbGciOi is the start of many tokens; eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.c2ln is not one",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        "-----END PUBLIC KEY-----",
        "The file starts with -----BEGIN RSA PRIVATE KEY----- and then base64.",
        "hf_hub_download(repo_id='x') and hf_transfer",
        "AKIA is how access key ids start; AKIAEXAMPLE is too short",
    ],
)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_a_private_key_cut_off_runs_to_the_end() -> None:
    text = "here:\n" + PEM.split("-----END")[0]
    assert found(text) == [("private_key", text[len("here:\n") :])]


def test_a_private_key_in_a_service_account_json() -> None:
    key = PEM.replace("\n", "\\n")
    text = json.dumps({"type": "service_account", "private_key": PEM})
    assert found(text) == [("private_key", key)]


def test_a_specific_format_wins_over_the_generic_assignment() -> None:
    text = 'OPENAI_API_KEY = "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCdEf"'
    assert [kind for kind, _ in found(text)] == ["openai_key"]


def test_kinds_option() -> None:
    text = "AKIAIOSFODNN7EXAMPLE and ghp_" + "a1B2c3D4e5F6" * 3
    assert found(text, SecretsGuard({"kinds": ["github_token"]})) == [
        ("github_token", "ghp_" + "a1B2c3D4e5F6" * 3)
    ]
    assert set(KINDS) >= {"openai_key", "jwt", "private_key", "assigned_secret"}


def test_min_entropy_option() -> None:
    text = "api_key = 'xyxyxyxy12121212'"
    assert entropy("xyxyxyxy12121212") == pytest.approx(2.0)
    assert found(text) == []
    assert found(text, SecretsGuard({"min_entropy": 1.5})) == [
        ("assigned_secret", "xyxyxyxy12121212")
    ]


def test_spans_index_unicode_text() -> None:
    text = "Schlüssel 🔑: ghp_" + "a1B2c3D4e5F6" * 3 + " — danke!"
    ((kind, value),) = found(text)
    assert kind == "github_token" and value.startswith("ghp_") and value.endswith("e5F6")
