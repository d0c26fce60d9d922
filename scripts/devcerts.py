"""Certificates for running Mend with TLS on one machine (`make dev-certs`), also used by
the tests: a private CA, a server certificate for 127.0.0.1 and localhost, and a client
certificate for mutual TLS, all signed by that CA.

    python -m scripts.devcerts var/tls

writes ca.pem, server.pem, server.key, client.pem and client.key there. For development
only: the CA's key is not kept, and nothing here is meant to guard real traffic.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
LOCAL_NAMES = ("localhost",)
LOCAL_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mend development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, common_name: str = "Mend development CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(common_name)
        self._cert = (
            _builder(self._name, self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        client: bool = False,
    ) -> Issued:
        """A server certificate for the given names (subject alternative names, which is
        what TLS clients check), or with client=True a client certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(_name(common_name), self._name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def local_server(self) -> Issued:
        """A server certificate valid for 127.0.0.1, ::1 and localhost."""
        return self.issue("localhost", dns_names=LOCAL_NAMES, ip_addresses=LOCAL_IPS)


def dev_certificates(ca: CertificateAuthority) -> dict[str, bytes]:
    """The files of `make dev-certs`: the CA, a server and a client certificate, as PEM."""
    server = ca.local_server()
    client = ca.issue("mend-client", client=True)
    return {
        "ca.pem": ca.cert_pem,
        "server.pem": server.cert_pem,
        "server.key": server.key_pem,
        "client.pem": client.cert_pem,
        "client.key": client.key_pem,
    }


def write(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Writes name -> PEM into `directory`; private keys (*.key) readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files.items():
        path = directory / name
        mode = 0o600 if name.endswith(".key") else 0o644
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            f.write(data)
        path.chmod(mode)  # an existing file keeps its mode through os.open
        paths[name] = path
    return paths


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m scripts.devcerts DIRECTORY")
    for path in write(Path(argv[0]), dev_certificates(CertificateAuthority())).values():
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
