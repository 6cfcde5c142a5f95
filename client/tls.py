"""TLS for the client's channel: the CA that signed the server's certificate and, for a
server that requires client certificates (mTLS), this client's certificate and key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TlsConfig", "TlsConfigError"]

PathLike = str | os.PathLike[str]


class TlsConfigError(ValueError):
    """Client TLS options that cannot work: a certificate without its key, an unreadable file."""


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings for FlowrunClient (`tls=`). All optional:

    - ca_file: PEM CA certificate(s) to verify the server with; None uses the system's
      roots (a server with a publicly trusted certificate).
    - cert_file, key_file: this client's PEM certificate (chain) and unencrypted key, for
      a server with FLOWRUN_TLS_CLIENT_CA_FILE (mTLS); both or neither.
    - server_name: the name to verify the server's certificate against instead of the
      target's host (grpc.ssl_target_name_override), e.g. when dialing an IP address
      that the certificate does not list.
    """

    ca_file: PathLike | None = None
    cert_file: PathLike | None = None
    key_file: PathLike | None = None
    server_name: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> TlsConfig | None:
        """FLOWRUN_TLS_CA_FILE (the server's CA), FLOWRUN_TLS_CERT_FILE and
        FLOWRUN_TLS_KEY_FILE (this client's certificate and key); None when none is set."""
        config = cls(
            ca_file=environ.get("FLOWRUN_TLS_CA_FILE") or None,
            cert_file=environ.get("FLOWRUN_TLS_CERT_FILE") or None,
            key_file=environ.get("FLOWRUN_TLS_KEY_FILE") or None,
        )
        return config if (config.ca_file or config.cert_file or config.key_file) else None

    def credentials(self) -> grpc.ChannelCredentials:
        """grpc.ssl_channel_credentials from the files (read now); raises TlsConfigError."""
        if (self.cert_file is None) != (self.key_file is None):
            raise TlsConfigError("a client certificate needs its key: give both cert_file and key_file, or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA file"),
            private_key=_read(self.key_file, "key file"),
            certificate_chain=_read(self.cert_file, "certificate file"),
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(path: PathLike | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
