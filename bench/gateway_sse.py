"""`python -m bench.gateway_sse HOST PORT API_KEY`: holds SSE streams of the REST gateway
for `python -m bench gateway`, with the protocol of bench/watch.py's gRPC watcher:

  stdin {"jobs": [job id per stream]}  -> opens one GET /api/v1/jobs/{id}/stream per entry
      (waves of OPEN_WAVE), reads each stream's first event (the job's state at open)
  stdout {"ready": n}                  -> then notes every later event until every stream
      has ended (after its terminal event)
  stdout {"samples": [[job id, id: (the version), event, receive ns], ...], "errors": n}

One HTTP/1.1 connection per stream (as browsers' EventSource), read on raw asyncio
streams: the gateway answers with chunked transfer encoding, one chunk per event. The
receive time is taken when the chunk holding the event has been read, before parsing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.watch import OPEN_WAVE, _say, _stdin_lines

OPEN_TIMEOUT = 60.0


class SseStream:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._buffer = b""

    async def open(self, host: str, port: int, api_key: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(
            f"GET /api/v1/jobs/{self.job_id}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"X-API-Key: {api_key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200" or b"transfer-encoding: chunked" not in head.lower():
            raise RuntimeError(f"stream of {self.job_id}: {head!r}")

    async def events(self) -> Any:
        """Yields (id, event, receive ns) for every event with an id, until the end."""
        assert self.reader is not None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            recv_ns = time.time_ns()
            if size == 0:
                return
            self._buffer += chunk[:-2]
            while (end := self._buffer.find(b"\n\n")) >= 0:
                block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                event_id, event = None, "message"
                for line in block.split(b"\n"):
                    if line.startswith(b"id: "):
                        event_id = int(line[4:])
                    elif line.startswith(b"event: "):
                        event = line[7:].decode()
                if event_id is not None:  # not a comment (keepalive) nor `retry:`
                    yield event_id, event, recv_ns

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _first(stream: SseStream) -> Any:
    events = stream.events()
    await anext(events)  # the state at open
    return events


async def _collect(stream: SseStream, events: Any, out: list[list[Any]]) -> None:
    try:
        async for event_id, event, recv_ns in events:
            out.append([stream.job_id, event_id, event, recv_ns])
    finally:
        stream.close()


async def main(host: str, port: int, api_key: str) -> None:
    stdin = await _stdin_lines()
    while line := await stdin.readline():
        job_ids: list[str] = json.loads(line)["jobs"]
        samples: list[list[Any]] = []
        tasks = []
        for start in range(0, len(job_ids), OPEN_WAVE):
            wave = [SseStream(job_id) for job_id in job_ids[start : start + OPEN_WAVE]]
            async with asyncio.timeout(OPEN_TIMEOUT):
                await asyncio.gather(*(s.open(host, port, api_key) for s in wave))
                firsts = await asyncio.gather(*(_first(s) for s in wave))
            tasks += [
                asyncio.create_task(_collect(s, events, samples))
                for s, events in zip(wave, firsts, strict=True)
            ]
        _say(ready=len(tasks))
        errors = 0
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                errors += 1
                print(f"SSE stream failed: {result!r}", file=sys.stderr)
        _say(samples=samples, errors=errors)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
