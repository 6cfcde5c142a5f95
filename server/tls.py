"""Server credentials from the settings: TLS, optionally mutual TLS, with certificate reload.

FLOWRUN_TLS_CERT_FILE and FLOWRUN_TLS_KEY_FILE (PEM, both or neither) turn TLS on;
FLOWRUN_TLS_CLIENT_CA_FILE additionally requires every client to present a certificate
signed by one of the CAs in that file (mTLS).

Reload uses gRPC's certificate configuration fetcher
(`grpc.dynamic_ssl_server_credentials`): gRPC core calls `ServerCertificates.fetch`
before every new TLS handshake, on one of its own threads (not the event loop's), and a
configuration it returns applies to that handshake and every later one. Connections
already open keep the session they negotiated, so calls in flight are never dropped.

`fetch` stays cheap: it stats the files and re-reads them only when one of them changed
(device, inode, size, mtime or ctime differ: an in-place write, a rename over it, a
Kubernetes secret's symlink swap) or after `reload()` (SIGHUP) asked for it. New files are
checked before use (PEM that parses, a key that matches its certificate, CAs that load);
on a bad or half-written set the server keeps serving the previous one, logs an error,
and tries again when the files next change. `fetch` never raises.

Everything here is gRPC's and the standard library's (ssl for the checks, hashlib for the
fingerprint that the logs show): no cryptography of our own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from flowrun.server.config import Settings

log = logging.getLogger("flowrun.tls")

# What grpc's auth_context() holds for a TLS peer (gRPC core's property names). With mTLS
# the client's certificate is verified before any call runs; its subject is
# PEER_SUBJECT_KEY (RFC 2253 order, most specific first: b"CN=ci-runner,O=example"),
# its common name PEER_COMMON_NAME_KEY, the certificate itself PEER_PEM_KEY.
PEER_SUBJECT_KEY = "x509_subject"
PEER_COMMON_NAME_KEY = "x509_common_name"
PEER_PEM_KEY = "x509_pem_cert"


class TlsError(Exception):
    """TLS settings or files the server cannot serve with."""


class _ChangedWhileReading(TlsError):
    """A rotation is writing the files right now: read them again at the next handshake."""


@dataclass(frozen=True)
class _Loaded:
    configuration: grpc.ServerCertificateConfiguration
    fingerprint: str  # SHA-256 of the serving certificate (DER), as `openssl x509 -fingerprint -sha256` shows it


class ServerCertificates:
    """The server's certificate, key and (mTLS) client CAs, re-read when they change."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._signature: tuple[tuple[int, ...], ...] | None = self._stat()
        loaded = self._load()  # at start a bad file is fatal: raises TlsError
        self.initial = loaded.configuration
        self.fingerprint = loaded.fingerprint

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate from client_ca_file."""
        return self.client_ca_file is not None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file, *((self.client_ca_file,) if self.client_ca_file else ()))

    def credentials(self) -> grpc.ServerCredentials:
        required = ", client certificates required" if self.mutual else ""
        log.info("TLS certificate %s (sha256 %s)%s", self.cert_file, self.fingerprint, required)
        # The stubs' fetcher may not return None; gRPC documents None as 'keep the current one'.
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=self.mutual,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate configuration fetcher: a new configuration, or None to keep
        the current one. Called by gRPC core before every TLS handshake, from its threads."""
        try:
            with self._lock:
                self._refresh(force=False)
                pending, self._pending = self._pending, None
                return pending
        except Exception:  # never into gRPC core: keep what is served
            log.exception("checking the TLS certificate files failed; keeping the current certificate")
            return None

    def reload(self) -> None:
        """Re-reads the files now, changed or not (SIGHUP). The result, or why the current
        certificate stays, is logged; new connections get it from their handshake on."""
        try:
            with self._lock:
                self._refresh(force=True)
        except Exception:
            log.exception("reloading the TLS certificate files failed; keeping the current certificate")

    def _refresh(self, *, force: bool) -> None:
        """With the lock held: loads the files if they changed (or `force`), leaving a new
        configuration in self._pending; on a bad set logs why and keeps the current one."""
        try:
            signature = self._stat()
        except OSError as exc:
            if force or self._signature is not None:  # log once per missing-file episode
                log.error("cannot read the TLS files (%s); keeping the current certificate", exc)
            self._signature = None
            return
        if not force and signature == self._signature:
            return
        self._signature = signature
        try:
            loaded = self._load()
            if self._stat() != signature:
                raise _ChangedWhileReading(f"{self.cert_file} or its companions changed while being read")
        except _ChangedWhileReading:
            self._signature = None  # not an error: a rotation in progress; read again next time
            return
        except (TlsError, OSError) as exc:
            log.error("%s; keeping the current certificate until the files change or SIGHUP", exc)
            return
        self._pending = loaded.configuration
        self.fingerprint = loaded.fingerprint
        log.info("TLS certificate %s loaded (sha256 %s); new connections use it", self.cert_file, loaded.fingerprint)

    def _stat(self) -> tuple[tuple[int, ...], ...]:
        """What changes whenever a file's contents may have: ctime moves on every write,
        even one that restores the mtime; the inode on a rename over the file."""
        signature = []
        for path in self.files:
            stat = os.stat(path)
            signature.append((stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
        return tuple(signature)

    def _load(self) -> _Loaded:
        """Reads and checks the files; raises TlsError naming the file and the problem."""
        cert = _read(self.cert_file, "FLOWRUN_TLS_CERT_FILE")
        key = _read(self.key_file, "FLOWRUN_TLS_KEY_FILE")
        client_ca = _read(self.client_ca_file, "FLOWRUN_TLS_CLIENT_CA_FILE") if self.client_ca_file else None
        check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            check.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        except (ssl.SSLError, TlsError) as exc:
            raise TlsError(
                f"FLOWRUN_TLS_CERT_FILE {self.cert_file} and FLOWRUN_TLS_KEY_FILE {self.key_file}: not a PEM "
                f"certificate chain and its unencrypted private key ({exc})"
            ) from exc
        if client_ca is not None:
            try:
                check.load_verify_locations(cadata=client_ca.decode("ascii"))
            except (ssl.SSLError, ValueError) as exc:
                raise TlsError(
                    f"FLOWRUN_TLS_CLIENT_CA_FILE {self.client_ca_file}: not PEM CA certificates ({exc})"
                ) from exc
        # load_cert_chain read the files by name: serve only what it checked.
        reread = _read(self.cert_file, "FLOWRUN_TLS_CERT_FILE"), _read(self.key_file, "FLOWRUN_TLS_KEY_FILE")
        if reread != (cert, key):
            raise _ChangedWhileReading(f"{self.cert_file} or {self.key_file} changed while being read")
        # The fingerprint of the first certificate, the server's own (a chain may follow).
        first = _FIRST_PEM_CERTIFICATE.search(cert)
        if first is None:
            raise TlsError(f"FLOWRUN_TLS_CERT_FILE {self.cert_file}: no PEM certificate")
        der = ssl.PEM_cert_to_DER_cert(first.group().decode("ascii"))
        configuration = grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)
        return _Loaded(configuration, hashlib.sha256(der).digest().hex(":").upper())


_FIRST_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{setting} {path}: {exc.strerror or exc}") from exc


def _no_password() -> bytes:
    # Without this OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise TlsError("the private key is encrypted; flowrun needs it unencrypted (protect the file instead)")


def server_certificates(settings: Settings) -> ServerCertificates | None:
    """The settings' certificates (None: TLS is off). Raises TlsError with a message for
    the operator when the settings are incomplete or a file is missing or bad."""
    cert, key, client_ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if cert is None and key is None:
        if client_ca is not None:
            raise TlsError(
                "FLOWRUN_TLS_CLIENT_CA_FILE needs FLOWRUN_TLS_CERT_FILE and FLOWRUN_TLS_KEY_FILE: client "
                "certificates are checked only over TLS"
            )
        return None
    if cert is None or key is None:
        given, missing = ("FLOWRUN_TLS_CERT_FILE", "FLOWRUN_TLS_KEY_FILE")
        if cert is None:
            given, missing = missing, given
        raise TlsError(f"{given} is set but {missing} is not: TLS needs both the certificate and its private key")
    try:
        return ServerCertificates(cert, key, client_ca)
    except OSError as exc:
        raise TlsError(f"cannot read the TLS files: {exc}") from exc


def check_settings(settings: Settings) -> None:
    """Raises TlsError if the server could not start with these TLS settings (a
    supervisor checks before it starts workers that would all fail the same way)."""
    server_certificates(settings)


def peer_subject(context: grpc.aio.ServicerContext) -> str | None:
    """The subject of the client's verified certificate (mTLS), e.g.
    "CN=ci-runner,O=example"; None without one. For servicers and for interceptors'
    wrapped handlers, which get the call's context."""
    values = list((context.auth_context() or {}).get(PEER_SUBJECT_KEY, ()))
    return values[0].decode() if values else None
