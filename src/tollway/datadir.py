"""The data dir: owner-only (0700), and the files generated into it written once, whole.

The data dir holds key hashes (the database), sealed provider credentials, the spend
journal and the generated secrets, so nobody but its owner may read it. Other code makes
subdirectories with ``mkdir(parents=True)``, which would create a missing data dir with
the default mode; so the data dir is made here first, when the app is built and when
``tollway serve`` starts.

Generated secrets are written to a temporary file, flushed to disk, then hard-linked to
their name: the name appears only with the whole value behind it, and when several
workers race, the first link wins and the others read the winner's value.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from tollway.settings import ConfigError

log = logging.getLogger("tollway.datadir")

DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirError(ConfigError):
    """The data dir or a file generated into it cannot be used as it is."""


def ensure_data_dir(path: Path) -> None:
    """Create the data dir owner-only, or tighten an existing one others can reach."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"data_dir {path} exists and is not a directory.") from None
    _tighten(path, DIR_MODE)


def read_generated(path: Path) -> str:
    """The value in a generated file; ``FileNotFoundError`` when there is none yet."""
    _tighten(path, FILE_MODE)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        # Never an empty secret: every key would hash, and every credential seal, under it.
        raise DataDirError(
            f"{path} is empty, so the data dir is damaged. Restore the file from a backup; "
            "deleting it makes a new one, which invalidates what the old one protected."
        )
    return value


def ensure_generated(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The value in ``path``, creating it from ``make()`` if missing; and whether this
    call created it. Safe when many processes call it at once: all get one value."""
    try:
        return read_generated(path), False
    except FileNotFoundError:
        pass
    ensure_data_dir(path.parent)
    value = make()
    if not value.strip():
        raise ValueError("a generated value must not be empty")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return read_generated(path), False
    finally:
        os.unlink(temporary)
    _sync_directory(path.parent)
    return value, True


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if not current & 0o077:
        return
    try:
        path.chmod(mode)
    except PermissionError:
        raise DataDirError(
            f"{path} is open to other users (mode {current:04o}) and could not be made "
            f"{mode:04o}; change its mode or owner."
        ) from None
    log.warning(
        "tightened permissions: others could reach it",
        extra={"fields": {"path": str(path), "was": f"{current:04o}", "now": f"{mode:04o}"}},
    )


def _sync_directory(directory: Path) -> None:
    # The new name is durable once its directory is synced (POSIX has directory fds).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
