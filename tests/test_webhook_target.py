"""The webhook SSRF guard and address pinning: WebhookTargets resolves a host once and
checks every address; post_pinned sends to those addresses, never resolving again. The
resolver is a parameter, so DNS rebinding (an answer that changes between the check and
the connection) is played by a resolver that answers differently the second time."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mend_core.errors import TargetRefused, UnresolvedHost
from mend_core.webhook_target import Resolver, WebhookTargets
from mend_server.webhooks import post_pinned


def answers(*replies: list[str]) -> tuple[Resolver, list[str]]:
    """A resolver giving these replies in turn (the last one again after), and the hosts
    it was asked about."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return replies[min(len(asked), len(replies)) - 1]

    return resolve, asked


def targets(resolver: Resolver, *, allow_private: bool = False) -> WebhookTargets:
    return WebhookTargets(
        allow_private=allow_private, resolve_timeout_seconds=0.5, resolver=resolver
    )


class Recorder:
    """An HTTP(S) server on one loopback address that records the requests it gets."""

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Message] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append(self.headers)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for recorder in started:
        recorder.close()


# ------------------------------------------------------------------ the check


async def test_every_resolved_address_must_be_public() -> None:
    resolve, _ = answers(["8.8.8.8", "10.0.0.1"])
    with pytest.raises(TargetRefused, match=r"localhost resolves to 10\.0\.0\.1, a private"):
        await targets(resolve).resolve("https://localhost/hook")
    resolve, _ = answers(["8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"])
    target = await targets(resolve).resolve("https://localhost:8443/hook")
    assert [str(a) for a in target.addresses] == ["8.8.8.8", "2001:4860:4860::8888"]
    assert (target.host, target.port) == ("localhost", 8443)


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("172.16.0.1", "private"),
        ("fd12::1", "private"),
        ("239.1.2.3", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a public address"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
async def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    resolve, _ = answers([address])
    with pytest.raises(TargetRefused, match=kind):
        await targets(resolve).resolve("http://localhost/hook")


async def test_ip_literals_are_checked_without_a_lookup() -> None:
    resolve, asked = answers(["8.8.8.8"])
    with pytest.raises(TargetRefused, match=r"^10\.1\.1\.1, a private address"):
        await targets(resolve).resolve("http://10.1.1.1/hook")
    target = await targets(resolve).resolve("http://[2001:4860:4860::8888]:8080/x")
    assert [str(a) for a in target.addresses] == ["2001:4860:4860::8888"]
    assert asked == []


async def test_a_name_that_does_not_resolve_is_refused_clearly() -> None:
    async def no_such_name(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    checker = targets(no_such_name)
    with pytest.raises(UnresolvedHost, match="localhost does not resolve: Name or service"):
        await checker.resolve("http://localhost/hook")
    assert await checker.refusal("http://localhost/hook") == (
        "host localhost does not resolve: Name or service not known"
    )


async def test_a_lookup_that_hangs_is_refused_after_the_timeout() -> None:
    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return []

    assert await targets(hangs).refusal("http://localhost/") == (
        "host localhost did not resolve within 0.5s"
    )


async def test_refusal_leaves_alone_what_validation_names_and_what_is_allowed() -> None:
    resolve, asked = answers(["127.0.0.1"])
    checker = targets(resolve)
    for url in ("", "ftp://localhost/x", "http://[::1", "http://localhost:99999/"):
        assert await checker.refusal(url) is None
    assert asked == []
    allowing = targets(resolve, allow_private=True)
    assert await allowing.refusal("http://localhost/") is None
    assert asked == []  # nothing looked up at submit when private targets are allowed
    # At delivery a target is still resolved once, to pin its address.
    target = await allowing.resolve("http://localhost/")
    assert [str(a) for a in target.addresses] == ["127.0.0.1"] and asked == ["localhost"]


# ------------------------------------------------------------------ pinning


async def test_post_goes_to_the_checked_address_not_a_second_answer(recorders) -> None:
    """Rebinding: `localhost` is checked as 127.0.0.2, then would resolve to 127.0.0.1
    (and does, for the system resolver). The POST must reach 127.0.0.2."""
    checked = Recorder("127.0.0.2")
    other = Recorder("127.0.0.1", checked.port)
    recorders.extend([checked, other])
    resolve, asked = answers(["127.0.0.2"], ["127.0.0.1"])
    url = f"http://localhost:{checked.port}/hook?x=1"
    target = await targets(resolve, allow_private=True).resolve(url)
    async with httpx.AsyncClient() as http:
        response = await post_pinned(http, target, b"{}", {"Content-Type": "application/json"})
    assert response.status_code == 204
    assert asked == ["localhost"]
    [headers] = checked.requests
    assert headers["Host"] == f"localhost:{checked.port}"
    assert other.requests == []


async def test_post_tries_the_next_checked_address_when_one_refuses(recorders) -> None:
    listening = Recorder("127.0.0.3")
    recorders.append(listening)
    resolve, _ = answers(["127.0.0.4", "127.0.0.3"])  # nothing listens on 127.0.0.4
    target = await targets(resolve, allow_private=True).resolve(
        f"http://localhost:{listening.port}/hook"
    )
    async with httpx.AsyncClient() as http:
        assert (await post_pinned(http, target, b"{}", {})).status_code == 204
    assert len(listening.requests) == 1


def _certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for the name `localhost` only (no IP)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: str, key, signer, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("Mend test CA", "Mend test CA", ca_key, ca_key, ca=True)
    leaf = build("localhost", "Mend test CA", key, ca_key, ca=False)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_https_keeps_the_urls_name_for_sni_and_the_certificate(recorders, tmp_path):
    ca, cert, key = _certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]
    recorder = Recorder("127.0.0.1", tls=server_tls)
    recorders.append(recorder)

    resolve, _ = answers(["127.0.0.1"])
    target = await targets(resolve, allow_private=True).resolve(
        f"https://localhost:{recorder.port}/hook"
    )
    # The certificate names `localhost`, not 127.0.0.1: it verifies only if the TLS
    # server name is the URL's host, though the connection goes to the address.
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as http:
        assert (await post_pinned(http, target, b"{}", {})).status_code == 204
    assert sni == ["localhost"]
    assert recorder.requests[0]["Host"] == f"localhost:{recorder.port}"
