"""Helpers for the serving tests: ``tollway serve`` configs in front of the fake upstream,
its JSON log lines, spend rows straight from SQLite, self-signed certificates, and
clients that retry the way SDKs do when a gateway process goes away."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fake_upstream import FakeUpstream
from served import ServedGateway

MASTER_KEY = "sk-tw-master-serving-5e8a1c3f7b9d2460"
OPENAI_KEY = "sk-upstream-oa-SERVING-1a2b3c4d5e6f"
OTHER_OPENAI_KEY = "sk-upstream-oa2-SERVING-6f5e4d3c2b1a"
ANTHROPIC_KEY = "sk-ant-upstream-SERVING-9d8c7b6a5f4e"
MESSAGES = [{"role": "user", "content": "Say hello."}]
# The machine may be busy: processes get this long to start, stop or log a line.
PATIENCE = 300.0
# Errors after which an SDK retries: the connection was refused, or closed before any
# response (by a process that stopped listening, before it read the request).
RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


def write_config(path: Path, data_dir: Path, fake: FakeUpstream, **overrides: Any) -> Path:
    """A config in front of ``fake``: ``gpt-live`` (oa: upstream-one) and ``claude-live``."""
    config: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "data_dir": str(data_dir),
        "log": {"level": "info", "access": False},
        "timeouts": {"connect": 2.0, "read": 120.0, "stream_idle": 120.0},
        "retry": {"attempts": 0},
        "config_watch_seconds": 0,
        "providers": {
            "oa": {"type": "openai", "base_url": fake.url + "/v1", "api_key": OPENAI_KEY},
            "an": {"type": "anthropic", "base_url": fake.url, "api_key": ANTHROPIC_KEY},
        },
        "models": [
            {"name": "gpt-live", "provider": "oa", "model": "upstream-one"},
            {"name": "claude-live", "provider": "an", "model": "claude-upstream-one"},
        ],
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def edit_config(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the YAML file with ``change`` applied, in one rename (as editors and
    ConfigMap updates do)."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(config)
    staged = path.with_suffix(".new")
    staged.write_text(yaml.safe_dump(config), encoding="utf-8")
    staged.replace(path)


def start(gateway: ServedGateway) -> ServedGateway:
    """Start and wait for readiness, with room for a busy machine."""
    return gateway.start(timeout=PATIENCE)


def log_lines(gateway: ServedGateway) -> list[dict[str, Any]]:
    """The JSON lines the process (and its workers) logged so far."""
    lines = []
    for line in gateway.log_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a line being written
    return lines


def wait_for_log(
    gateway: ServedGateway, accept: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Poll the log until ``accept`` holds for its lines; fails with the log otherwise."""
    deadline = time.monotonic() + PATIENCE
    while True:
        lines = log_lines(gateway)
        if accept(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"the log never showed it:\n{gateway.log_text()[-4000:]}")
        time.sleep(0.1)


def messages(lines: list[dict[str, Any]], msg: str) -> list[dict[str, Any]]:
    """The lines with this message."""
    return [line for line in lines if line.get("msg") == msg]


def spend_rows(db: Path, where: str = "1=1", *args: Any) -> list[dict[str, Any]]:
    """Rows of the ``spend`` table, read straight from SQLite."""
    conn = sqlite3.connect(db, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM spend WHERE {where} ORDER BY id", args).fetchall()
    finally:
        conn.close()
    return [dict(row) for row in rows]


def chat(model: str, marker: str, *, stream: bool = False) -> dict[str, Any]:
    """A chat body whose prompt carries ``marker`` (scripts and records match on it)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"Say hello. [{marker}]"}],
        "max_tokens": 50,
    }
    if stream:
        body["stream"] = True
    return body


def bearer(key: str = MASTER_KEY) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"authorization": f"Bearer {key}"}


async def post_retrying(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], tries: list[str]
) -> httpx.Response:
    """POST like an SDK: on a refused or dropped connection try again (each failure's
    kind is appended to ``tries``), until ``PATIENCE`` runs out."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return await client.post(url, json=body, headers=bearer())
        except RETRYABLE as exc:
            tries.append(type(exc).__name__)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, as files."""

    cert_file: Path
    key_file: Path
    sha256: str  # of the DER certificate

    def install(self, cert_file: Path, key_file: Path) -> None:
        """Replace the served files with this pair, each in one rename (certificate
        first, as a renewal tool writes them)."""
        for source, target in ((self.cert_file, cert_file), (self.key_file, key_file)):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            staged.replace(target)


def self_signed(directory: Path, name: str) -> Certificate:
    """A fresh key and a certificate valid for a day, named ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file, cert.fingerprint(hashes.SHA256()).hex())
