"""Small invariants: key derivation matches RFC 5869, and the migration head constant
that lets a started gateway skip loading Alembic is the real head."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.auth.secrets import SealError, ServerKeys, hkdf_sha256
from tollway.settings import Settings
from tollway.store.migrate import HEAD_REVISION, head_revision


def test_hkdf_matches_rfc5869_test_case_3() -> None:
    # RFC 5869 A.3: SHA-256, zero-length salt and info.
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_head_constant_is_alembics_head() -> None:
    assert head_revision() == HEAD_REVISION


def test_sealed_credentials_open_only_in_their_context(tmp_path: Path) -> None:
    keys = ServerKeys.from_settings(Settings(data_dir=tmp_path, secret_key="s" * 40))
    token = keys.seal(b"sk-proj-secret", "project:a")
    assert b"sk-proj-secret" not in token.encode()
    assert keys.open(token, "project:a") == b"sk-proj-secret"
    with pytest.raises(SealError):
        keys.open(token, "project:b")
    with pytest.raises(SealError):
        keys.open(token[:-4] + "AAAA", "project:a")
    with pytest.raises(SealError):
        keys.open("v0:" + token[3:], "project:a")
