"""TLS for gRPC from the MEND_TLS_* settings: the server's credentials, and those of the
gateway's channel to the server.

Every file is read and checked at start, so that a wrong path, a file that is not PEM or
a key that does not match its certificate stops the process with a message naming the
setting (gRPC itself would only say "Failed to bind to address")."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from mend_core.settings import Settings

_CERT_MARK = b"-----BEGIN CERTIFICATE-----"
_KEY_MARK = b"PRIVATE KEY-----"


def _setting(field: str) -> str:
    return f"MEND_{field.upper()}"


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise SystemExit(f"{_setting(field)}: cannot read {path}: {err.strerror}") from None


def _certificates(path: Path, field: str) -> bytes:
    """PEM certificates (a chain or a CA bundle) that parse."""
    data = _read(path, field)
    if _CERT_MARK not in data:
        raise SystemExit(
            f"{_setting(field)}: {path} holds no PEM certificate ({_CERT_MARK.decode()})"
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as err:
        raise SystemExit(f"{_setting(field)}: {path} holds a broken certificate ({err})") from None
    return data


class _EncryptedKeyError(Exception):
    pass


def _refuse_password() -> str:
    raise _EncryptedKeyError


def _key_pair(settings: Settings, cert_field: str, key_field: str) -> tuple[bytes, bytes] | None:
    """(key, certificate chain) from two settings that are both set or both unset."""
    cert_path, key_path = getattr(settings, cert_field), getattr(settings, key_field)
    if cert_path is None and key_path is None:
        return None
    if cert_path is None or key_path is None:
        given, missing = (cert_field, key_field) if key_path is None else (key_field, cert_field)
        raise SystemExit(
            f"{_setting(given)} is set but {_setting(missing)} is not: "
            "a certificate needs its private key (set both, PEM files)"
        )
    cert = _certificates(cert_path, cert_field)
    key = _read(key_path, key_field)
    if _KEY_MARK not in key:
        raise SystemExit(f"{_setting(key_field)}: {key_path} holds no PEM private key")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            cert_path, key_path, password=_refuse_password
        )
    except _EncryptedKeyError:
        raise SystemExit(
            f"{_setting(key_field)}: {key_path} is encrypted; gRPC needs an unencrypted key"
        ) from None
    except ssl.SSLError as err:
        raise SystemExit(
            f"{_setting(key_field)}: {key_path} is not the private key of the certificate "
            f"in {_setting(cert_field)} ({err.reason or err})"
        ) from None
    return key, cert


@dataclass(frozen=True)
class ServerTLS:
    credentials: grpc.ServerCredentials
    mutual: bool

    @property
    def name(self) -> str:
        return "mutual TLS" if self.mutual else "TLS"


def server_tls(settings: Settings) -> ServerTLS | None:
    """The server's TLS credentials, or None for plaintext."""
    pair = _key_pair(settings, "tls_cert", "tls_key")
    if pair is None:
        if settings.tls_client_ca is not None:
            raise SystemExit(
                "MEND_TLS_CLIENT_CA is set but MEND_TLS_CERT and MEND_TLS_KEY are not: "
                "mutual TLS needs the server's own certificate too"
            )
        return None
    client_ca = settings.tls_client_ca
    roots = _certificates(client_ca, "tls_client_ca") if client_ca is not None else None
    credentials = grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=roots is not None
    )
    return ServerTLS(credentials, mutual=roots is not None)


def upstream_uses_tls(settings: Settings) -> bool:
    """The gateway dials TLS when the server beside it serves TLS (MEND_TLS_CERT), or
    when it is given roots to trust (MEND_TLS_CA) for a server elsewhere."""
    return settings.tls_cert is not None or settings.tls_ca is not None


def upstream_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """The credentials of the gateway's channel to the gRPC server, or None for plaintext."""
    if not upstream_uses_tls(settings):
        return None
    roots = _certificates(settings.tls_ca, "tls_ca") if settings.tls_ca is not None else None
    pair = _key_pair(settings, "gateway_tls_cert", "gateway_tls_key")
    if pair is None and settings.tls_client_ca is not None:
        raise SystemExit(
            "MEND_TLS_CLIENT_CA makes the gRPC server require client certificates: set "
            "MEND_GATEWAY_TLS_CERT and MEND_GATEWAY_TLS_KEY for the gateway's channel"
        )
    key, chain = pair if pair is not None else (None, None)
    return grpc.ssl_channel_credentials(roots, key, chain)


def upstream_options(settings: Settings) -> list[tuple[str, str]]:
    """Channel options for TLS: the name to check the server's certificate against."""
    if settings.tls_server_name and upstream_uses_tls(settings):
        return [("grpc.ssl_target_name_override", settings.tls_server_name)]
    return []
