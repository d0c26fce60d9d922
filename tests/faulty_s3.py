"""A fault-injecting HTTP proxy in front of moto's S3 server, so worker tests can make
object reads slow, stuck or flaky without any test hook in production code.

Workers point MEND_S3_ENDPOINT_URL at the proxy. Everything is forwarded to moto, except
that object reads (GET and HEAD of `/bucket/key`, path-style) can be told to:

* wait until released (`hold_reads`, `release`), or for a fixed time (`delay_reads`);
* answer with an S3 error such as 503 SlowDown (`fail_reads`);
* reset the connection without answering (`reset_reads`).

Each fault applies to the next `count` matching reads (every matching read when count is
None), optionally only for one key. Faults are applied in the order they were added.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3.session

from mend_devkit.s3 import AWS_ENV, MotoS3

# A held read that nobody releases gives up after this long, so a failed test cannot
# leave proxy threads (and the workers behind them) stuck forever.
MAX_HOLD_SECONDS = 60.0
# Hop-by-hop headers are the proxy's own business; Content-Length is recomputed.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "content-length",
    }
)


@dataclass
class _Fault:
    action: str  # "hold", "delay", "fail" or "reset"
    remaining: int | None  # None: every matching read
    key: str | None
    seconds: float = 0.0
    status: int = 503
    code: str = "SlowDown"
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, key: str) -> bool:
        return self.remaining != 0 and (self.key is None or self.key == key)


class FaultyS3:
    """The proxy. `endpoint` is its URL; `upstream` is the S3 server it forwards to."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._lock = threading.Condition()
        self._faults: list[_Fault] = []
        self._held = 0
        self.reads: list[tuple[str, str]] = []  # (method, key) of every object read seen
        self.faults_served = 0
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.heal()
        self._server.shutdown()
        self._server.server_close()

    # -------------------------------------------------------------------- the test's API

    def hold_reads(self, count: int | None = None, key: str | None = None) -> None:
        """Matching reads wait (up to MAX_HOLD_SECONDS) until `release()`."""
        self._add(_Fault("hold", count, key))

    def delay_reads(self, seconds: float, count: int | None = None, key: str | None = None) -> None:
        """Matching reads wait `seconds` (counted in `held` meanwhile), then go on."""
        self._add(_Fault("delay", count, key, seconds=seconds))

    def fail_reads(
        self,
        count: int | None,
        status: int = 503,
        code: str = "SlowDown",
        key: str | None = None,
    ) -> None:
        self._add(_Fault("fail", count, key, status=status, code=code))

    def reset_reads(self, count: int | None, key: str | None = None) -> None:
        self._add(_Fault("reset", count, key))

    def release(self) -> None:
        """Lets every held read go on, and stops holding new ones."""
        with self._lock:
            for fault in self._faults:
                if fault.action == "hold":
                    fault.released.set()
            self._faults = [f for f in self._faults if f.action != "hold"]

    def reset(self) -> None:
        """No faults and fresh counters: the state of a new proxy, for the next test."""
        self.heal()
        with self._lock:
            self.reads.clear()
            self.faults_served = 0

    def heal(self) -> None:
        """Removes every fault; held and delayed reads go on at once."""
        with self._lock:
            for fault in self._faults:
                fault.released.set()
            self._faults.clear()

    @property
    def held(self) -> int:
        """How many reads are being held or delayed right now."""
        with self._lock:
            return self._held

    def reads_of(self, key: str) -> int:
        with self._lock:
            return sum(1 for _, k in self.reads if k == key)

    # ------------------------------------------------------------------------ internals

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, key: str) -> _Fault | None:
        with self._lock:
            self.reads.append((method, key))
            for fault in self._faults:
                if fault.matches(key):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    self.faults_served += 1
                    return fault
            return None

    def _hold(self, fault: _Fault) -> None:
        with self._lock:
            self._held += 1
            self._lock.notify_all()
        try:
            fault.released.wait(fault.seconds or MAX_HOLD_SECONDS)
        finally:
            with self._lock:
                self._held -= 1
                self._lock.notify_all()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that vanish mid-request (killed workers) are expected here


def _object_key(path: str) -> str | None:
    """The key of a path-style object URL (`/bucket/key`), None for bucket-level calls."""
    bucket, _, key = urlsplit(path).path.lstrip("/").partition("/")
    return unquote(key) if bucket and key else None


def _error_xml(code: str, status: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>injected by the test proxy ({status})</Message>"
        f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
    ).encode()


def _handler_for(proxy: FaultyS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._read_or_forward()

        def do_HEAD(self) -> None:
            self._read_or_forward()

        def do_PUT(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

        def _read_or_forward(self) -> None:
            key = _object_key(self.path)
            fault = proxy._take_fault(self.command, key) if key is not None else None
            if fault is None:
                self._forward()
            elif fault.action in ("hold", "delay"):
                proxy._hold(fault)
                self._forward()
            elif fault.action == "fail":
                body = _error_xml(fault.code, fault.status)
                self._answer(fault.status, [("Content-Type", "application/xml")], body)
            else:
                self._reset()

        def _reset(self) -> None:
            # SO_LINGER 0 makes close() send RST instead of FIN: "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.rfile.close()
            self.connection.close()

        def _request_body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _forward(self) -> None:
            body = self._request_body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=30
            )
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                out = [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED]
                if self.command == "HEAD":
                    # No body, but the object's length, as S3 sends it.
                    length = response.getheader("Content-Length")
                    if length is not None:
                        out.append(("Content-Length", length))
                self._answer(response.status, out, data)
            finally:
                upstream.close()

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            with contextlib.suppress(OSError):  # the client may be gone (killed worker)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(body)))
                elif not any(name.lower() == "content-length" for name, _ in headers):
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.wfile.flush()

    return Handler


class S3Service:
    """moto's S3 server with a FaultyS3 proxy in front, and a direct client for the test."""

    def __init__(self) -> None:
        self._moto = MotoS3()
        self.moto_endpoint = self._moto.endpoint
        self.proxy = FaultyS3(self.moto_endpoint)
        # The test's own client talks to moto directly: its calls never meet the faults.
        self.client: Any = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("s3", endpoint_url=self.moto_endpoint)

    def env(self) -> dict[str, str]:
        """Environment for a worker that reads and writes S3 through the proxy."""
        return {
            **AWS_ENV,
            "MEND_STORAGE": "s3",
            "MEND_S3_ENDPOINT_URL": self.proxy.endpoint,
            "MEND_S3_REGION": "us-east-1",
        }

    def new_bucket(self) -> str:
        name = f"mend-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, bucket: str, key: str) -> tuple[bytes, str]:
        """The object's bytes and Content-Type."""
        response = self.client.get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["ContentType"]

    def exists(self, bucket: str, key: str) -> bool:
        listing = self.client.list_objects_v2(Bucket=bucket, Prefix=key)
        return any(o["Key"] == key for o in listing.get("Contents", []))

    def close(self) -> None:
        self.proxy.close()
        self.client.close()
        self._moto.stop()


@contextlib.contextmanager
def s3_service() -> Iterator[S3Service]:
    service = S3Service()
    try:
        yield service
    finally:
        service.close()
