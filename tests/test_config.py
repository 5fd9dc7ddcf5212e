"""Configuration: YAML with ${VAR} interpolation, TOLLWAY_ overrides, errors that name the
field, providers from the standard variables, and the generated master key."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from tollway.auth.master import ensure_master_key, master_key_path
from tollway.settings import ConfigError, Settings, load_settings

BASE = """
    providers:
      oa: {type: openai, api_key: sk-file-key, base_url: "http://127.0.0.1:9/v1"}
      an: {type: anthropic}
    models:
      - {name: gpt-x, provider: oa, model: gpt-x-upstream}
      - {name: claude-*, provider: an}
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, without variables that would change the outcome."""
    monkeypatch.chdir(tmp_path)
    for name in ("TOLLWAY_CONFIG", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "bad.yaml", text))
    message = str(caught.value)
    assert "Traceback" not in message
    assert "\n" not in message.strip()
    return message


# --------------------------------------------------------------------------- loading


def test_yaml_file_is_loaded(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "c.yaml", BASE))
    assert settings.providers["oa"].type == "openai"
    assert settings.providers["oa"].base_url == "http://127.0.0.1:9/v1"
    assert settings.providers["an"].api_key is None
    assert settings.models[0].upstream_model == "gpt-x-upstream"
    assert settings.models[1].upstream_model == "claude-*"


def test_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_T_KEY", "sk-from-env-123")
    monkeypatch.setenv("TW_T_EMPTY", "")
    monkeypatch.delenv("TW_T_UNSET", raising=False)
    monkeypatch.delenv("TW_T_URL", raising=False)
    path = write(
        tmp_path / "c.yaml",
        """
        master_key: ${TW_T_KEY}-master
        providers:
          oa:
            type: openai
            api_key: "${TW_T_KEY}"
            base_url: "${TW_T_URL:-http://127.0.0.1:1234/v1}"
            organization: "${TW_T_EMPTY:-org-default}"
          an: {type: anthropic, api_key: "${TW_T_UNSET}"}
        models:
          - {name: m, provider: oa}
        """,
    )
    settings = load_settings(path)
    oa = settings.providers["oa"]
    assert oa.api_key is not None and oa.api_key.get_secret_value() == "sk-from-env-123"
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == "sk-from-env-123-master"
    assert oa.base_url == "http://127.0.0.1:1234/v1"
    assert oa.organization == "org-default"
    # An unset variable means "not set", not an empty credential.
    assert settings.providers["an"].api_key is None

    monkeypatch.setenv("TW_T_URL", "https://llm.internal.example/v1/")
    assert load_settings(path).providers["oa"].base_url == "https://llm.internal.example/v1"


@pytest.mark.parametrize(
    "value",
    ["pa55 #word", "*starts-with-star", "123456", "a: b", 'say "hi"', "line1\nline2", "yes"],
)
def test_interpolated_values_are_taken_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # A secret with YAML syntax in it must neither change the file's structure nor its type.
    monkeypatch.setenv("TW_T_MASTER", value)
    monkeypatch.setenv("TW_T_KEY", value)
    text = """
        master_key: ${TW_T_MASTER}
        providers:
          oa: {type: openai, api_key: "${TW_T_KEY}"}
    """
    settings = load_settings(write(tmp_path / "c.yaml", text))
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == value
    api_key = settings.providers["oa"].api_key
    assert api_key is not None and api_key.get_secret_value() == value


def test_interpolated_numbers_and_flags_are_typed_by_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_T_PORT", "9123")
    monkeypatch.setenv("TW_T_ACCESS", "false")
    text = """
        port: ${TW_T_PORT}
        max_body_bytes: ${TW_T_UNSET_LIMIT:-4096}
        log: {level: info, access: "${TW_T_ACCESS}"}
    """
    settings = load_settings(write(tmp_path / "c.yaml", text))
    assert settings.port == 9123
    assert settings.max_body_bytes == 4096
    assert settings.log.access is False


def test_unquoted_variable_inside_flow_mapping_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # YAML itself refuses '{' inside a plain scalar in flow style: quote "${VAR}" there.
    monkeypatch.setenv("TW_T_KEY", "sk-abc")
    message = config_error(tmp_path, "providers: {oa: {type: openai, api_key: ${TW_T_KEY}}}\n")
    assert "bad.yaml" in message
    assert "line 1" in message


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path / "c.yaml",
        BASE
        + """
    master_key: sk-file-master
    max_body_bytes: 4096
    timeouts: {connect: 7, read: 30}
    log: {level: warning}
    """,
    )
    monkeypatch.setenv("TOLLWAY_MASTER_KEY", "sk-env-master")
    monkeypatch.setenv("TOLLWAY_TIMEOUTS__CONNECT", "3")
    monkeypatch.setenv("TOLLWAY_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TOLLWAY_LOG__LEVEL", "debug")
    monkeypatch.setenv("TOLLWAY_PROVIDERS__OA__API_KEY", "sk-env-provider-key")
    settings = load_settings(path)
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == "sk-env-master"
    assert settings.max_body_bytes == 2048
    assert settings.log.level == "debug"
    # Nested overrides merge into the file's section instead of replacing it.
    assert settings.timeouts.connect == 3
    assert settings.timeouts.read == 30
    oa = settings.providers["oa"]
    assert oa.api_key is not None and oa.api_key.get_secret_value() == "sk-env-provider-key"
    assert oa.base_url == "http://127.0.0.1:9/v1"
    assert oa.type == "openai"


def test_cli_overrides_beat_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", BASE + "    port: 9000\n    host: 0.0.0.0\n")
    settings = load_settings(path, {"port": 9100, "host": None, "workers": 3})
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.workers == 3


def test_config_from_tollway_config_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "elsewhere.yaml", BASE)
    monkeypatch.setenv("TOLLWAY_CONFIG", str(path))
    assert set(load_settings().providers) == {"oa", "an"}


def test_config_from_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "tollway.yaml", BASE)
    assert set(load_settings().providers) == {"oa", "an"}


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "c.yaml", "# nothing yet\n"))
    assert settings.providers == {}
    assert settings.port == 8080


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "providers: {oa: {type: gemini-ish}}",
            "providers.oa.type",
        ),
        (
            "providers: {oa: {type: openai}}\nmodels: [{name: m, provider: nope}]",
            "models[0].provider",
        ),
        ("provders: {oa: {type: openai}}", "provders"),
        ("providers: {oa: {type: openai, apikey: x}}", "providers.oa.apikey"),
        ("timeouts: {connect: -1}", "timeouts.connect"),
        ("timeouts: {stream_idle: 0}", "timeouts.stream_idle"),
        ("timeouts: {read: soon}", "timeouts.read"),
        ("providers: {oa: {type: openai, base_url: not-a-url}}", "providers.oa.base_url"),
        ("providers: {oa: {type: openai, base_url: 'ftp://x/v1'}}", "providers.oa.base_url"),
        (
            "providers: {oa: {type: openai}}\n"
            "models: [{name: m, provider: oa, fallbacks: [ghost]}]",
            "models[0].fallbacks",
        ),
        (
            "providers: {oa: {type: openai}}\n"
            "models: [{name: m, provider: oa}, {name: m, provider: oa}]",
            "models[1].name",
        ),
        ("port: 70000", "port"),
        ("max_body_bytes: 10", "max_body_bytes"),
        ("workers: 0", "workers"),
        ("log: {level: loud}", "log.level"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    assert field in config_error(tmp_path, text)


@pytest.mark.parametrize(
    "text", ["- just\n- a list\n", "providers: [\n", "key: value\n  bad: indent\n"]
)
def test_unusable_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "bad.yaml", text))
    assert "bad.yaml" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_missing_files_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")
    monkeypatch.setenv("TOLLWAY_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="TOLLWAY_CONFIG"):
        load_settings()


def test_invalid_environment_override_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_TIMEOUTS__CONNECT", "-5")
    with pytest.raises(ConfigError, match=r"timeouts\.connect"):
        load_settings(write(tmp_path / "c.yaml", BASE))


# --------------------------------------------------------------------------- no file


def test_no_file_enables_providers_from_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa-from-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    settings = load_settings()
    openai_provider = settings.providers["openai"]
    anthropic_provider = settings.providers["anthropic"]
    assert openai_provider.type == "openai"
    assert openai_provider.api_key is not None
    assert openai_provider.api_key.get_secret_value() == "sk-oa-from-env"
    assert openai_provider.base_url == "http://127.0.0.1:11434/v1"
    assert anthropic_provider.type == "anthropic"
    assert anthropic_provider.api_key is not None
    assert anthropic_provider.api_key.get_secret_value() == "sk-ant-from-env"
    served = {model.name: model.provider for model in settings.models}
    assert served["gpt-*"] == "openai"
    assert served["claude-*"] == "anthropic"


def test_no_file_only_the_variables_that_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    settings = load_settings()
    assert set(settings.providers) == {"anthropic"}
    assert {m.provider for m in settings.models} == {"anthropic"}


def test_no_file_and_no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.providers == {}
    assert settings.models == []


# --------------------------------------------------------------------------- master key


def test_master_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data" / "nested")
    key, generated = ensure_master_key(settings)
    assert generated
    assert key.startswith("sk-tw-master-")
    assert len(key) >= len("sk-tw-master-") + 32
    path = master_key_path(settings)
    assert path.parent == tmp_path / "data" / "nested"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8").strip() == key

    again, generated_again = ensure_master_key(Settings(data_dir=tmp_path / "data" / "nested"))
    assert again == key
    assert not generated_again


def test_configured_master_key_is_used_and_nothing_written(tmp_path: Path) -> None:
    settings = Settings(master_key="sk-configured-master", data_dir=tmp_path / "d")
    assert ensure_master_key(settings) == ("sk-configured-master", False)
    assert not master_key_path(settings).exists()


def test_generated_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    first, _ = ensure_master_key(Settings(data_dir=tmp_path / "a"))
    second, _ = ensure_master_key(Settings(data_dir=tmp_path / "b"))
    assert first != second
