"""GET /api/v1/jobs/{id}/stream: WatchJob as Server-Sent Events, with the events of
Mend's SSE guide.

    event: status    {"status": "processing", "message": "Processing started"}
    event: progress  {"percent": 50, "message": "..."}
    event: complete  {"status": "completed", "result": {...}}
    event: error     {"status": "failed", "error": "..."}   (also for "cancelled")

Every event's `id:` is the job version it shows; a client that reconnects with
`Last-Event-ID` gets what happened after that version (WatchJob's from_version). Idle
streams carry `: keepalive` comments. The stream ends after the terminal event; a
reconnect after it gets 204, which tells EventSource to stop reconnecting. A client that
goes away cancels the upstream WatchJob call at once.

The stream is opened by WatchJob alone (no GetJob first), so that a stream token, which
the server accepts for WatchJob only, can open it: the first message is awaited before
the 200 is sent, and a refusal is an ordinary JSON error with its HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mend.v1 import jobs_pb2 as pb
from mend_client.rest_json import message_to_json
from mend_core.errors import Violation
from mend_server.gateway.errors import GatewayError, error_response, from_rpc_error, invalid
from mend_server.gateway.metrics import Metrics
from mend_server.gateway.protojson import JsonStyle
from mend_server.gateway.routes import HttpRoute
from mend_server.gateway.shared_watch import END, HEARTBEAT, SharedWatches, State
from mend_server.gateway.transcode import request_message, unchanged
from mend_server.gateway.upstream import Upstream, forwarded_metadata

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "cancelled")
RECONNECT_MS = 3000
_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
}
_RAW_HEADERS = [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
_STOP = object()  # the gateway is shutting down
# A version as Last-Event-ID carries it: ASCII digits that fit an int64.
_EVENT_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
LAST_EVENT_ID = "Last-Event-ID"


KEEPALIVE = b": keepalive\n\n"


@dataclass
class JobEvents:
    """Turns successive job states into Mend's events, remembering what it already said."""

    status: str | None = None
    progress: dict[str, Any] | None = field(default=None)

    def events(self, job: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        status = job.get("status", "")
        out: list[tuple[str, dict[str, Any]]] = []
        if status != self.status:
            self.status = status
            out.append(self._status_event(job, status))
        progress = job.get("progress")
        if status == "processing" and progress and progress != self.progress:
            self.progress = progress
            percent, message = progress.get("percent", 0), progress.get("message", "")
            out.append(("progress", {"percent": percent, "message": message}))
        return out

    @staticmethod
    def _status_event(job: dict[str, Any], status: str) -> tuple[str, dict[str, Any]]:
        if status == "completed":
            return "complete", {"status": status, "result": job.get("result", {})}
        if status in ("failed", "cancelled"):
            default = "Job was cancelled" if status == "cancelled" else "Job failed"
            return "error", {"status": status, "error": job.get("error") or default}
        if status == "processing":
            return "status", {"status": status, "message": "Processing started"}
        data: dict[str, Any] = {"status": status, "message": "Job queued for processing"}
        if job.get("attempt"):
            data["message"] = (
                f"Job queued for retry (attempt {job['attempt'] + 1} of {job.get('max_attempts')})"
            )
        for key in ("queue_position", "estimated_wait_seconds"):
            if key in job:
                data[key] = job[key]
        return "status", data


class _EventStream:
    """The ASGI response of one SSE stream, over a WatchJob call whose first message
    (`first`, or END) was read already; once the response has started, the stream takes
    the job's later states from the job's shared watch (shared_watch.py)."""

    def __init__(
        self,
        owner: JobStreams,
        job_id: str,
        call: grpc.aio.UnaryStreamCall,
        first: object | None,
        tracker: JobEvents,
        seen: int,
    ) -> None:
        self._owner = owner
        self._job_id = job_id
        self._call = call
        self._tracker = tracker
        self._seen = seen  # the last version the client was told (or knew already)
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        if first is not None:
            self._queue.put_nowait(first)

    def stop(self) -> None:
        self._queue.put_nowait(_STOP)

    def deliver(self, item: object) -> None:
        self._queue.put_nowait(item)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shared = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
            self._owner.opened(self)
            shared = self._owner.shared.join(self._job_id, self._call, self._seen, self)
            pump = asyncio.create_task(self._pump(send))
            listen = asyncio.create_task(self._listen_for_disconnect(receive))
            try:
                await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, listen):
                    task.cancel()
                await asyncio.gather(pump, listen, return_exceptions=True)
                self._owner.closed(self)
        finally:
            # A client that left must not keep a WatchJob open upstream: the last stream
            # of a shared watch cancels its call.
            if shared is not None:
                shared.leave(self)
            else:
                self._call.cancel()
        if not pump.done() or pump.cancelled():
            return  # the client left
        if (error := pump.exception()) is not None:
            log.error("SSE stream of job %s failed", self._job_id, exc_info=error)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _listen_for_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _next(self) -> object:
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), self._owner.keepalive)
        except TimeoutError:
            return HEARTBEAT

    async def _pump(self, send: Send) -> None:
        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        await write(f"retry: {RECONNECT_MS}\n\n".encode())
        while True:
            item = await self._next()
            if item is END or item is _STOP:
                return
            if item is HEARTBEAT:
                await write(KEEPALIVE)
                continue
            if isinstance(item, grpc.aio.AioRpcError):
                # Mid-stream failure (server restarting, ...): end the stream; the
                # client reconnects with Last-Event-ID and misses nothing.
                log.warning("WatchJob %s ended: %s", self._job_id, item.code().name)
                return
            if isinstance(item, pb.WatchJobResponse):  # the admission call's first message
                if item.HasField("heartbeat"):
                    await write(KEEPALIVE)
                    continue
                item = State(item.job, self._owner.to_json)
            else:
                assert isinstance(item, State)
                if item.version <= self._seen:
                    continue  # from a shared watch that is behind this stream: known
                self._seen = item.version
            job = item.json
            for event, data in self._tracker.events(job):
                await write(item.frame(event, data))
            if job.get("status") in TERMINAL:
                return


def _is_heartbeat(item: object) -> bool:
    return isinstance(item, pb.WatchJobResponse) and item.HasField("heartbeat")


def _same_name(name: str) -> str:
    return name


def _header_name(name: str) -> str:
    """Names from_version as the client gave it, when that was Last-Event-ID."""
    return LAST_EVENT_ID if name == "from_version" else name


class JobStreams:
    """The SSE endpoint of the WatchJob route. WatchJob's first message answers its
    first question (may this caller see this job, and what is its state now) before any
    byte is streamed, so that errors are ordinary JSON errors with their HTTP status."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        style: JsonStyle,
        keepalive_seconds: float,
        metrics: Metrics,
        max_body_bytes: int,
    ) -> None:
        service = pb.DESCRIPTOR.services_by_name["JobService"]
        self.watch = upstream.stream(service.methods_by_name["WatchJob"])
        self._timeout = upstream.timeout
        self.style = style
        self.keepalive = keepalive_seconds
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._open: set[_EventStream] = set()
        self.shared = SharedWatches(self.to_json)

    def to_json(self, job: pb.Job) -> dict[str, Any]:
        return message_to_json(job, self.style)

    def opened(self, stream: _EventStream) -> None:
        self._open.add(stream)
        self._metrics.streams.inc()

    def closed(self, stream: _EventStream) -> None:
        self._open.discard(stream)
        self._metrics.streams.dec()

    def stop_all(self) -> None:
        """Ends every open stream (at shutdown); clients reconnect elsewhere."""
        for stream in list(self._open):
            stream.stop()

    def endpoint(self, route: HttpRoute):  # noqa: ANN201 - a Starlette endpoint
        async def handle(request: Request) -> Response | _EventStream:
            try:
                return await self._start(route, request)
            except GatewayError as err:
                return error_response(err)

        handle.__name__ = route.method.name
        return handle

    async def _open_call(
        self,
        watch: pb.WatchJobRequest,
        metadata: tuple[tuple[str, str], ...],
        rename: Callable[[str], str],
    ) -> tuple[grpc.aio.UnaryStreamCall, object]:
        """A WatchJob call and its first message (END if it ended without one), or the
        call's refusal as a GatewayError."""
        call = self.watch(watch, metadata=metadata)
        try:
            first = await asyncio.wait_for(call.read(), self._timeout)
        except grpc.aio.AioRpcError as err:
            self._metrics.rpc("WatchJob", err.code().name)
            raise from_rpc_error(err, rename) from None
        except TimeoutError:
            call.cancel()
            self._metrics.rpc("WatchJob", grpc.StatusCode.DEADLINE_EXCEEDED.name)
            raise GatewayError(
                504, "the job service did not answer in time", "DEADLINE_EXCEEDED"
            ) from None
        self._metrics.rpc("WatchJob", grpc.StatusCode.OK.name)
        return call, END if first is grpc.aio.EOF else first

    async def _start(self, route: HttpRoute, request: Request) -> Response | _EventStream:
        transcoded = await request_message(
            route,
            request,
            style=self.style,
            adapt=unchanged,
            max_body_bytes=self._max_body_bytes,
        )
        watch = transcoded.checked()
        assert isinstance(watch, pb.WatchJobRequest)
        rename = _same_name
        last_event_id = (request.headers.get("last-event-id") or "").strip()
        if last_event_id:
            # EventSource keeps the URL (and its ?from_version=) across reconnects and
            # adds the id of the last event it saw: the header is the newer news, and wins.
            if not _EVENT_ID.fullmatch(last_event_id):
                raise invalid(
                    [Violation(LAST_EVENT_ID, "must be an event id from this stream (a version)")]
                )
            watch.from_version = int(last_event_id)
            rename = _header_name
        resumed = watch.HasField("from_version")
        prime: int | None = None
        if resumed and watch.from_version >= 1:
            # Start one version early: that state (the last one the client saw) is read
            # but not sent, so the first event after it is a real change.
            prime = watch.from_version
            watch.from_version -= 1
        metadata = forwarded_metadata(request.headers, request.query_params)
        call, first = await self._open_call(watch, metadata, rename)
        tracker = JobEvents()
        if prime is not None:
            if first is END or _is_heartbeat(first):
                # Nothing after the version before the client's: the job is not yet at
                # the client's version. Asked again as the client asked, the server
                # says so (OUT_OF_RANGE) in its own words.
                call.cancel()
                watch.from_version, prime = prime, None
                call, first = await self._open_call(watch, metadata, rename)
            elif isinstance(first, pb.WatchJobResponse) and first.job.version == prime:
                state = message_to_json(first.job, self.style)
                tracker.events(state)  # what the client already knows: not said again
                first = None
                if state.get("status") in TERMINAL:
                    call.cancel()
                    return Response(status_code=204)  # seen it all: EventSource stops here
        if resumed and first is END:
            return Response(status_code=204)
        if request.method == "HEAD":
            call.cancel()
            return Response(headers=_HEADERS)
        if isinstance(first, pb.WatchJobResponse) and first.HasField("job"):
            seen = first.job.version
        else:  # resumed: the client has seen from_version (or its primed state)
            seen = prime if prime is not None else watch.from_version
        return _EventStream(self, watch.id, call, first, tracker, seen)
