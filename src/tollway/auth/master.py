"""The master key: from config, or generated once into the data dir (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tollway.settings import Settings

MASTER_KEY_FILE = "master_key"
MASTER_KEY_PREFIX = "sk-tw-master-"


def master_key_path(settings: Settings) -> Path:
    """Where a generated master key lives."""
    return settings.data_dir / MASTER_KEY_FILE


def ensure_master_key(settings: Settings) -> tuple[str, bool]:
    """The master key, and whether it was generated just now."""
    if settings.master_key is not None:
        return settings.master_key.get_secret_value(), False
    path = master_key_path(settings)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), False
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = MASTER_KEY_PREFIX + secrets.token_urlsafe(32)
    # O_EXCL: two workers starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, True
