"""HTTPS from certificate files that may be replaced while the gateway serves.

uvicorn builds the listening socket's SSL context once (``ssl_context_factory``). Its
SNI callback, which OpenSSL calls on every handshake (with or without a server name),
hands the new connection the context of the newest certificate: the files are checked
(``stat``) at most once a second and, when they changed, loaded into a fresh context.
Connections already open keep the certificate they were made with. A pair that does not
load (say the certificate was replaced and its key not yet) is logged and the previous
certificate stays in use until the files change again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import time
from pathlib import Path

from tollway.config_serving import TlsConfig

log = logging.getLogger("tollway.tls")
CHECK_SECONDS = 1.0
Stamp = tuple[tuple[int, int, int], tuple[int, int, int]]


class TlsError(Exception):
    """The certificate or its key cannot be loaded."""


class ServedCertificate:
    """The server's certificate, reloaded when its files change; an instance is uvicorn's
    ``ssl_context_factory`` (picklable: each worker process builds its own contexts)."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._current: ssl.SSLContext | None = None
        self._stamp: Stamp | None = None
        self._checked = 0.0

    def __call__(self, _config: object, _default: object) -> ssl.SSLContext:
        """The listening socket's context (called by uvicorn once per process)."""
        self._stamp = self._stamps()
        base = self._current = self.load()
        self._checked = time.monotonic()
        base.sni_callback = self._choose
        return base

    def load(self) -> ssl.SSLContext:
        """A server context with the files' certificate and key; TlsError naming why not."""
        config = self._config
        password = config.key_password.get_secret_value() if config.key_password else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(config.cert_file, config.key_file, password=password)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"tls: cannot load {config.cert_file} with {config.key_file}: {exc}"
            ) from None
        return context

    def _choose(self, conn: ssl.SSLObject, _name: str | None, context: ssl.SSLContext) -> None:
        # An exception here would fail the handshake; none is expected, but a connection
        # must never be refused for the reloader's sake.
        try:
            current = self._fresh()
            if current is not None and current is not context:
                conn.context = current
        except Exception:  # the edge: log, and serve the context already in use
            log.exception("choosing the TLS certificate failed")

    def _fresh(self) -> ssl.SSLContext | None:
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return self._current
        self._checked = now
        stamp = self._stamps()
        if stamp is None or stamp == self._stamp:
            return self._current
        self._stamp = stamp
        try:
            self._current = self.load()
        except TlsError as exc:
            log.warning(
                "TLS certificate not reloaded; serving the previous one",
                extra={"fields": {"reason": str(exc)}},
            )
        else:
            log.info(
                "TLS certificate reloaded",
                extra={
                    "fields": {
                        "cert_file": str(self._config.cert_file),
                        "sha256": fingerprint(self._config.cert_file),
                        "pid": os.getpid(),
                    }
                },
            )
        return self._current

    def _stamps(self) -> Stamp | None:
        try:
            cert, key = self._config.cert_file.stat(), self._config.key_file.stat()
        except OSError:
            return None  # being replaced: look again at the next check
        return (
            (cert.st_mtime_ns, cert.st_size, cert.st_ino),
            (key.st_mtime_ns, key.st_size, key.st_ino),
        )


def fingerprint(cert_file: Path) -> str | None:
    """SHA-256 of the file's first certificate (DER), as ``openssl x509 -fingerprint``
    shows it without colons; None when it cannot be read."""
    try:
        pem = cert_file.read_text(encoding="ascii")
        end = pem.index(ssl.PEM_FOOTER) + len(ssl.PEM_FOOTER)
        der = ssl.PEM_cert_to_DER_cert(pem[pem.index(ssl.PEM_HEADER) : end])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return hashlib.sha256(der).hexdigest()
