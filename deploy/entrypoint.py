#!/usr/bin/env python3
"""The image's entry point: secrets read from files, then the command (``tollway serve``).

``NAME_FILE=/run/secrets/x`` sets ``NAME`` to the file's contents, without the final line
break, for the names that hold secrets: ``TOLLWAY_...`` and names ending in ``_KEY``,
``_TOKEN``, ``_SECRET`` or ``_PASSWORD``. Tollway reads its settings and the ``${VAR}``
references of tollway.yaml from the environment, and Docker and Compose hand secrets
over as files: this joins the two. Setting both ``NAME`` and ``NAME_FILE`` is an error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

_SECRET = re.compile(r"^(TOLLWAY_[A-Z0-9_]+|[A-Z0-9_]+_(KEY|TOKEN|SECRET|PASSWORD))$")
_SUFFIX = "_FILE"


class EntrypointError(Exception):
    """A secret file cannot be used; the message names the variable."""


def secrets_from_files(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each secret's ``NAME_FILE`` replaced by ``NAME`` and its contents."""
    result = dict(environ)
    for variable, path in environ.items():
        name = variable.removesuffix(_SUFFIX)
        if name == variable or not _SECRET.match(name):
            continue
        if name in environ:
            raise EntrypointError(f"both {name} and {variable} are set: set one of them")
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read()
        except OSError as exc:
            raise EntrypointError(f"{variable}: cannot read {path}: {exc.strerror}") from None
        result[name] = value.rstrip("\r\n")
        del result[variable]
    return result


def main(argv: list[str]) -> None:
    """Run ``argv`` (in place of this process) with the secrets in its environment."""
    if not argv:
        sys.exit("usage: tollway-entrypoint COMMAND [ARG...]")
    try:
        environ = secrets_from_files(os.environ)
    except EntrypointError as exc:
        sys.exit(f"error: {exc}")
    os.execvpe(argv[0], argv, environ)  # noqa: S606 (the image's own command, no shell)


if __name__ == "__main__":
    main(sys.argv[1:])
