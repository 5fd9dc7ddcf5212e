"""The serving settings: their defaults, the environment overriding them, and errors that
name the field (TLS files that are not there, a negative grace)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from serving_support import self_signed

from tollway.settings import ConfigError, load_settings


def config(path: Path, **values: object) -> Path:
    """A config file with these settings (and no provider: none is needed)."""
    path.write_text(yaml.safe_dump({"data_dir": str(path.parent / "data"), **values}))
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path / "tollway.yaml"))
    assert settings.shutdown_grace_seconds == 30
    assert settings.config_watch_seconds == 2
    assert settings.tls is None


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_SHUTDOWN_GRACE_SECONDS", "7.5")
    monkeypatch.setenv("TOLLWAY_CONFIG_WATCH_SECONDS", "0")
    settings = load_settings(config(tmp_path / "tollway.yaml", shutdown_grace_seconds=60))
    assert (settings.shutdown_grace_seconds, settings.config_watch_seconds) == (7.5, 0)


def test_tls_files(tmp_path: Path) -> None:
    pair = self_signed(tmp_path / "certs", "ok")
    tls = {"cert_file": str(pair.cert_file), "key_file": str(pair.key_file)}
    settings = load_settings(config(tmp_path / "tollway.yaml", tls=tls))
    assert settings.tls is not None
    assert (settings.tls.cert_file, settings.tls.key_file) == (pair.cert_file, pair.key_file)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"tls": {"cert_file": "missing.crt", "key_file": "missing.key"}}, "tls.cert_file:"),
        ({"tls": {"cert_file": "x.crt"}}, "tls.key_file: Field required"),
        ({"tls": {"cert_file": "x.crt", "key_file": "x.key", "ca": 1}}, "tls.ca:"),
        ({"shutdown_grace_seconds": -1}, "shutdown_grace_seconds:"),
        ({"config_watch_seconds": "often"}, "config_watch_seconds:"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, values: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(tmp_path / "tollway.yaml", **values))
    assert expected in str(raised.value)
