"""Certificates for the TLS tests, made fresh for each session: the files `make dev-certs`
writes (scripts/devcerts.py), plus a stranger's CA and client certificate, and a server
certificate that names only `localhost`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.devcerts import CertificateAuthority, dev_certificates, write


@dataclass(frozen=True)
class Pki:
    ca: Path  # signed every certificate below but the stranger's
    server_cert: Path  # for 127.0.0.1, ::1 and localhost
    server_key: Path
    client_cert: Path
    client_key: Path
    localhost_cert: Path  # a server certificate for DNS:localhost only, no IP address
    localhost_key: Path
    other_ca: Path  # a CA that signed nothing of ours
    stranger_cert: Path  # a client certificate signed by other_ca
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    ca, other = CertificateAuthority(), CertificateAuthority("Someone else's CA")
    localhost = ca.issue("localhost", dns_names=("localhost",))
    stranger = other.issue("stranger", client=True)
    files = dev_certificates(ca) | {
        "localhost.pem": localhost.cert_pem,
        "localhost.key": localhost.key_pem,
        "other-ca.pem": other.cert_pem,
        "stranger.pem": stranger.cert_pem,
        "stranger.key": stranger.key_pem,
    }
    paths = write(directory, files)
    return Pki(
        ca=paths["ca.pem"],
        server_cert=paths["server.pem"],
        server_key=paths["server.key"],
        client_cert=paths["client.pem"],
        client_key=paths["client.key"],
        localhost_cert=paths["localhost.pem"],
        localhost_key=paths["localhost.key"],
        other_ca=paths["other-ca.pem"],
        stranger_cert=paths["stranger.pem"],
        stranger_key=paths["stranger.key"],
    )
