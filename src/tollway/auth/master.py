"""The master key: from config, or generated once into the data dir (mode 0600)."""

from __future__ import annotations

import secrets
from pathlib import Path

from tollway.datadir import ensure_data_dir, ensure_generated
from tollway.settings import Settings

MASTER_KEY_FILE = "master_key"
MASTER_KEY_PREFIX = "sk-tw-master-"


def master_key_path(settings: Settings) -> Path:
    """Where a generated master key lives."""
    return settings.data_dir / MASTER_KEY_FILE


def ensure_master_key(settings: Settings) -> tuple[str, bool]:
    """The master key, and whether it was generated just now (the data dir is made 0700
    first either way: this is the first thing building the app does)."""
    ensure_data_dir(settings.data_dir)
    if settings.master_key is not None:
        return settings.master_key.get_secret_value(), False
    return ensure_generated(
        master_key_path(settings), lambda: MASTER_KEY_PREFIX + secrets.token_urlsafe(32)
    )
