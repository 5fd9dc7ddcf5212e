"""HTTPS from ``tls: {cert_file, key_file}``: served by every worker, verified by a
client that trusts the certificate, and replaced while running: once the files change,
new connections get the new certificate; files that do not load leave the old one in
use. A key that does not match stops startup with a message naming ``tls``."""

from __future__ import annotations

import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from serving_support import (
    PATIENCE,
    Certificate,
    bearer,
    chat,
    messages,
    self_signed,
    start,
    wait_for_log,
    write_config,
)

from fake_upstream import TEXT, FakeUpstream
from served import TOLLWAY, ServedGateway, clean_env, free_port

# How often a worker looks at the files (tollway.tls.CHECK_SECONDS), with a margin.
SETTLE = 1.5


def get(gateway: ServedGateway, trusted: Certificate) -> httpx.Response:
    """A health check on a new connection, trusting only ``trusted``."""
    context = ssl.create_default_context(cafile=str(trusted.cert_file))
    with httpx.Client(verify=context, timeout=PATIENCE) as client:
        return client.get(gateway.url + "/health/live")


def refused(gateway: ServedGateway, trusted: Certificate) -> bool:
    """Whether a client trusting only ``trusted`` refuses the certificate served."""
    try:
        get(gateway, trusted)
    except httpx.ConnectError as exc:
        return "CERTIFICATE_VERIFY_FAILED" in str(exc)
    return False


def test_tls_is_served_by_every_worker_and_a_renewed_certificate_replaces_it(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    old, new = self_signed(tmp_path / "certs", "old"), self_signed(tmp_path / "certs", "new")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    old.install(cert_file, key_file)
    tls = {"cert_file": str(cert_file), "key_file": str(key_file)}
    config = write_config(tmp_path / "tollway.yaml", tmp_path / "data", fake, tls=tls)
    gateway = ServedGateway(config, tmp_path / "data", workers=2, ca_file=old.cert_file)
    start(gateway)
    try:
        assert gateway.log_text().count('"url":"https://') == 1
        context = ssl.create_default_context(cafile=str(old.cert_file))
        with httpx.Client(base_url=gateway.url, verify=context, timeout=PATIENCE) as client:
            response = client.post(
                "/v1/chat/completions", json=chat("gpt-live", "over-tls"), headers=bearer()
            )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == TEXT
        for _ in range(6):
            assert get(gateway, old).status_code == 200
            assert refused(gateway, new)
        with pytest.raises(httpx.HTTPError):
            httpx.get(gateway.url.replace("https://", "http://") + "/health/live", timeout=5)

        # A half-written renewal (a certificate whose key is not there) is not used.
        (tmp_path / "certs" / "broken.crt").write_bytes(new.cert_file.read_bytes())
        (tmp_path / "certs" / "broken.key").write_text("not a key\n", encoding="ascii")
        Certificate(
            tmp_path / "certs" / "broken.crt", tmp_path / "certs" / "broken.key", "-"
        ).install(cert_file, key_file)
        time.sleep(SETTLE)
        for _ in range(6):
            assert get(gateway, old).status_code == 200
        wait_for_log(gateway, lambda lines: bool(messages(lines, WARNED)))

        # The renewal completes: every new connection, on either worker, gets it.
        new.install(cert_file, key_file)
        time.sleep(SETTLE)
        for _ in range(8):
            assert get(gateway, new).status_code == 200
            assert refused(gateway, old)
        lines = wait_for_log(gateway, lambda lines: bool(messages(lines, RELOADED)))
        assert {line["sha256"] for line in messages(lines, RELOADED)} == {new.sha256}
    finally:
        gateway.stop()


RELOADED = "TLS certificate reloaded"
WARNED = "TLS certificate not reloaded; serving the previous one"


def test_a_key_that_does_not_match_stops_startup_naming_tls(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    one, other = self_signed(tmp_path / "certs", "one"), self_signed(tmp_path / "certs", "other")
    tls = {"cert_file": str(one.cert_file), "key_file": str(other.key_file)}
    config = write_config(tmp_path / "tollway.yaml", tmp_path / "data", fake, tls=tls)
    result = subprocess.run(
        [TOLLWAY, "serve", "--config", str(config), "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: tls: cannot load {one.cert_file} with ")
    assert "Traceback" not in result.stderr
