"""The UI's files (HTML, ES modules, CSS), read once from the installed package.

Nothing is fetched from elsewhere: the pages load only these files, so the UI works
offline. Each is served with a strong ETag and ``Cache-Control: no-cache``, so a browser
revalidates (a 304 without a body) and never runs a stale module after an upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    """One file: its bytes, type and entity tag."""

    body: bytes
    content_type: str
    etag: str


def _walk(folder: Traversable, prefix: str) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for item in folder.iterdir():
        name = f"{prefix}{item.name}"
        if item.is_dir():
            found.update(_walk(item, name + "/"))
            continue
        suffix = "." + item.name.rpartition(".")[2]
        content_type = _TYPES.get(suffix)
        if content_type is None:
            continue  # only the kinds of file the UI is made of are served
        body = item.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[name] = Asset(body, content_type, etag)
    return found


class Assets:
    """Every file under ``tollway/ui/static``, by its path there (``js/app.js``)."""

    def __init__(self) -> None:
        self._files = _walk(files("tollway.ui") / "static", "")

    def get(self, path: str) -> Asset | None:
        """The file at ``path``, or None (only files shipped here, no other path)."""
        return self._files.get(path)

    def names(self) -> list[str]:
        """Every file's path."""
        return sorted(self._files)
