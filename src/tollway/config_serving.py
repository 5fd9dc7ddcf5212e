"""The ``tls`` section: what ``tollway serve`` serves HTTPS with.

It belongs to the serving process (uvicorn and its workers), not to the proxy path: a
config reload leaves it as it was, but the files it names are re-read when they change
(``tls.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class TlsConfig(BaseModel):
    """Serve HTTPS with this certificate (chain first, PEM) and private key; both files
    are re-read when they change, for new connections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path = Field(description="PEM certificate chain: the server's first.")
    key_file: Path = Field(description="PEM private key of the certificate.")
    key_password: SecretStr | None = Field(None, description="When the key is encrypted.")

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value
