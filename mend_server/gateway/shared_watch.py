"""One upstream WatchJob per job, shared by all the SSE streams of that job.

Each SSE stream is admitted by a WatchJob call of its own (with its own credentials: the
server alone decides who may see the job, and its first message is the state the client
is told). Then, rather than each stream reading its own call, the streams of a job share
one: a stream that has seen version K joins a shared watch that holds every state after
K (from its recent history), and its own call is cancelled; when none holds them, its own
call becomes a new shared watch for the streams that come after it. So a change of a job
followed by a hundred SSE clients is one message from the server and one conversion to
JSON in the gateway, not a hundred of each.

A shared watch ends with its upstream call: its states, heartbeats, end or error reach
every stream of it, as they would have reached each stream's own call. The last stream
that leaves cancels the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from mend.v1 import jobs_pb2 as pb

log = logging.getLogger(__name__)

END = object()  # the upstream stream ended
HEARTBEAT = object()  # the server said the stream is alive, and nothing changed
# States a shared watch keeps for streams that join it behind (their own call read an
# older state than the shared one has reached); a stream further behind gets its own.
HISTORY = 64


class State:
    """A job state from the server, converted once for every stream that shows it: its
    JSON, and each SSE frame made from it (a frame depends only on the state and the
    event's name)."""

    __slots__ = ("version", "json", "_frames")

    def __init__(self, job: pb.Job, to_json: Callable[[pb.Job], dict[str, Any]]) -> None:
        self.version = job.version
        self.json = to_json(job)
        self._frames: dict[str, bytes] = {}

    def frame(self, event: str, data: dict[str, Any]) -> bytes:
        found = self._frames.get(event)
        if found is None:
            payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            found = f"id: {self.version}\nevent: {event}\ndata: {payload}\n\n".encode()
            self._frames[event] = found
        return found


class Subscriber(Protocol):
    def deliver(self, item: object) -> None:
        """A State, HEARTBEAT, END or the call's grpc.aio.AioRpcError."""


class SharedWatch:
    """One upstream WatchJob call and the streams it feeds."""

    def __init__(
        self, owner: SharedWatches, job_id: str, call: grpc.aio.UnaryStreamCall, base: int
    ) -> None:
        self._owner = owner
        self.job_id = job_id
        self._call = call
        # Every state after `base` that the call delivered is in `history` or older than
        # its first entry; a stream that has seen `base` or later misses nothing here.
        self.base = base
        self.history: deque[State] = deque()
        self.subscribers: set[Subscriber] = set()
        self._reader = asyncio.create_task(self._read(), name=f"watch-{job_id}")

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self._owner.ended(self)
            self._call.cancel()  # nobody left to tell: the server stops watching too
            self._reader.cancel()

    async def _read(self) -> None:
        try:
            while (message := await self._call.read()) is not grpc.aio.EOF:
                assert isinstance(message, pb.WatchJobResponse)
                item: object = HEARTBEAT
                if message.HasField("job"):
                    item = State(message.job, self._owner.to_json)
                    if len(self.history) == HISTORY:
                        self.base = self.history.popleft().version
                    self.history.append(item)
                self._broadcast(item)
            self._end(END)
        except grpc.aio.AioRpcError as err:
            self._end(err)

    def _end(self, item: object) -> None:
        self._owner.ended(self)  # nobody may join a call that said its last
        self._broadcast(item)

    def _broadcast(self, item: object) -> None:
        for subscriber in self.subscribers:
            subscriber.deliver(item)


class SharedWatches:
    """The gateway's shared watches, by job."""

    def __init__(self, to_json: Callable[[pb.Job], dict[str, Any]]) -> None:
        self.to_json = to_json
        self._by_job: dict[str, list[SharedWatch]] = {}

    def join(
        self, job_id: str, call: grpc.aio.UnaryStreamCall, seen: int, subscriber: Subscriber
    ) -> SharedWatch:
        """Feeds `subscriber` (whose own `call` has given it the job's states up to
        version `seen`) every later state: from a shared watch that holds them all (the
        call is then cancelled), or from its call, shared from now on."""
        for shared in self._by_job.get(job_id, ()):
            if shared.base <= seen:
                call.cancel()
                for state in shared.history:
                    if state.version > seen:
                        subscriber.deliver(state)
                shared.subscribers.add(subscriber)
                return shared
        shared = SharedWatch(self, job_id, call, seen)
        shared.subscribers.add(subscriber)
        self._by_job.setdefault(job_id, []).append(shared)
        return shared

    def ended(self, shared: SharedWatch) -> None:
        found = self._by_job.get(shared.job_id)
        if found is not None and shared in found:
            found.remove(shared)
            if not found:
                del self._by_job[shared.job_id]

    @property
    def calls(self) -> int:
        """Upstream WatchJob calls open for streams (admission calls aside)."""
        return sum(len(found) for found in self._by_job.values())
