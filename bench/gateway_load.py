"""`python -m bench.gateway_load`: a closed-loop HTTP/1.1 load generator for the REST
gateway, driven over stdin/stdout with bench/loadgen.py's protocol (so bench.api.Fleet
drives it unchanged):

  {"op": "connect", "target": NAME, "address": "127.0.0.1:PORT", "channels": C, "api_key": K}
      C is the number of keep-alive connections (the pool)
  {"op": "run", "target": NAME, "method": "submit" | "get", "concurrency": N,
   "seconds": S, "max_calls": M}
      -> {"calls", "elapsed", "errors": {status: n}, "latencies_us": [...]}
  {"op": "quit"}

N coroutines each keep one request in flight; a request waits for a free connection of
the pool, and its latency includes that wait (what a client with a bounded pool sees).
`submit` is POST /api/v1/jobs/image/resize (the flat body, the same job as loadgen.py's
SubmitImageResize); `get` is GET /api/v1/jobs/{id} on ids it submitted.

Two clients, chosen by `--client`: `raw` (the default) speaks HTTP/1.1 itself on asyncio
streams, a few µs of CPU per request, so that on a 2-core machine the load generator
takes as little as possible from the gateway; `httpx` is httpx.AsyncClient (HTTP/1.1,
keep-alive, the same pool size), what a Python user would write."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

SUBMIT_PATH = "/api/v1/jobs/image/resize"
# The same job as bench/loadgen.py's RESIZE.
SUBMIT_BODY = json.dumps(
    {
        "source_bucket": "bench-source",
        "source_key": "images/input.jpg",
        "dest_bucket": "bench-dest",
        "dest_key": "images/output.jpg",
        "width": 800,
        "height": 600,
    },
    separators=(",", ":"),
).encode()
CALL_TIMEOUT_SECONDS = 10.0
MAX_IDS = 10_000
SEED_JOBS = 1_000

# (method, path, body) -> (status, body)
Exchange = Callable[[str, str, bytes | None], Awaitable[tuple[int, bytes]]]


class HttpError(Exception):
    """The response could not be read (connection closed, malformed)."""


class RawConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self.prefix = f"Host: {host}:{port}\r\nX-API-Key: {api_key}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None or self.reader.at_eof():
            # Never opened, or closed by the server while idle (uvicorn's keep-alive
            # timeout is 5 s): reconnect, as HTTP clients do before reusing a connection.
            self.close()
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\n{self.prefix}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            lower = raw.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(raw[at + 17 : raw.index(b"\r\n", at + 2)])
                data = await self.reader.readexactly(length)
            elif b"\r\ntransfer-encoding: chunked" in lower:
                data = await read_chunked(self.reader)
            else:
                raise HttpError(f"no length in {raw!r}")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(repr(exc)) from exc
        except BaseException:
            self.close()  # cancelled (timeout) mid-response: the connection is unusable
            raise
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, data


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(parts)
        parts.append(chunk[:-2])


@dataclass
class Target:
    exchange: Exchange
    close: Callable[[], Awaitable[None]]
    job_ids: list[str] = field(default_factory=list)


class Pool:
    """Connections handed out first come, first served. (An asyncio.Queue is not fair: a
    coroutine that puts a connection back and asks again at once takes it before the
    waiters it just woke, so half the requests would wait for the whole run.)"""

    def __init__(self, items: list[RawConnection]) -> None:
        self._free = deque(items)
        self._waiters: deque[asyncio.Future[RawConnection]] = deque()

    async def acquire(self) -> RawConnection:
        if self._free:  # never while someone waits: release hands over directly
            return self._free.popleft()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, item: RawConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._free.append(item)


async def connect_raw(host: str, port: int, connections: int, api_key: str) -> Target:
    conns = [RawConnection(host, port, api_key) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in conns))
    pool = Pool(conns)

    async def exchange(method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        conn = await pool.acquire()
        try:
            return await conn.exchange(method, path, body)
        finally:
            pool.release(conn)

    async def close() -> None:
        for c in conns:
            c.close()

    return Target(exchange, close)


async def connect_httpx(host: str, port: int, connections: int, api_key: str) -> Target:
    import httpx

    client = httpx.AsyncClient(
        base_url=f"http://{host}:{port}",
        headers={"X-API-Key": api_key},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=CALL_TIMEOUT_SECONDS,
    )
    json_headers = {"Content-Type": "application/json"}

    async def exchange(method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        try:
            if body is None:
                response = await client.request(method, path)
            else:
                response = await client.request(method, path, content=body, headers=json_headers)
        except httpx.TransportError as exc:
            raise HttpError(repr(exc)) from exc
        return response.status_code, response.content

    return Target(exchange, client.aclose)


async def run(
    target: Target, method: str, concurrency: int, seconds: float, max_calls: int
) -> dict[str, Any]:
    if method == "get" and not target.job_ids:
        await run(target, "submit", min(concurrency, 50), 60.0, SEED_JOBS)
    latencies: list[int] = []
    errors: Counter[str] = Counter()
    started = itertools.count()
    paths = [f"/api/v1/jobs/{job_id}" for job_id in target.job_ids] if method == "get" else []
    keep_ids = target.job_ids if method == "submit" else None
    exchange = target.exchange
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        clock = time.perf_counter_ns
        while time.perf_counter() < deadline:
            n = next(started)
            if n >= max_calls:
                return
            t0 = clock()
            try:
                # asyncio.timeout, not wait_for: no task per request.
                async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                    if method == "submit":
                        status, body = await exchange("POST", SUBMIT_PATH, SUBMIT_BODY)
                    else:
                        status, body = await exchange("GET", paths[n % len(paths)], None)
            except (HttpError, OSError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                continue
            if status not in (200, 202):
                errors[str(status)] += 1
                continue
            latencies.append((clock() - t0) // 1000)
            if keep_ids is not None and len(keep_ids) < MAX_IDS:
                keep_ids.append(json.loads(body)["job_id"])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "calls": len(latencies),
        "elapsed": time.perf_counter() - t0,
        "errors": dict(errors),
        "latencies_us": latencies,
    }


async def main(client: str) -> None:
    loop = asyncio.get_running_loop()
    targets: dict[str, Target] = {}
    connect = connect_httpx if client == "httpx" else connect_raw
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = json.loads(line)
        if cmd["op"] == "connect":
            host, _, port = cmd["address"].rpartition(":")
            targets[cmd["target"]] = await connect(host, int(port), cmd["channels"],
                                                   cmd["api_key"])
            answer: dict[str, Any] = {"ok": True}
        elif cmd["op"] == "run":
            answer = await run(
                targets[cmd["target"]], cmd["method"], cmd["concurrency"], cmd["seconds"],
                cmd["max_calls"],
            )
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for target in targets.values():
        await target.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_load")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    asyncio.run(main(parser.parse_args().client))
