"""What a watch remembers across reconnects: the last version seen, its deadline and its
reconnect backoff. Both clients drive the same state; only their I/O differs."""

from __future__ import annotations

import random
import time

from mend.v1 import jobs_pb2 as pb
from mend_client._errors import DeadlineExceeded, MendError, Unavailable
from mend_client._types import Job

INITIAL_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0
# How long a watch keeps reconnecting to a server that does not answer before it gives up.
DEFAULT_RECONNECT_SECONDS = 60.0


class WatchState:
    def __init__(
        self,
        job_id: str,
        *,
        from_version: int | None,
        timeout: float | None,
        reconnect_for: float | None,
    ) -> None:
        self.job_id = job_id
        self.last_version = from_version
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._reconnect_for = reconnect_for
        self._failing_since: float | None = None
        self._backoff = INITIAL_BACKOFF_SECONDS

    def request(self) -> pb.WatchJobRequest:
        # Resuming from the last version replays every change made while disconnected,
        # from the job's event log on the server.
        return pb.WatchJobRequest(id=self.job_id, from_version=self.last_version)

    def call_timeout(self) -> float | None:
        """The deadline of the next WatchJob call: what is left of the watch's timeout."""
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"job {self.job_id} did not finish within {self._timeout:g}s")

    def connected(self) -> None:
        """A message arrived: the connection works again."""
        self._failing_since = None
        self._backoff = INITIAL_BACKOFF_SECONDS

    def seen(self, job: Job) -> None:
        self.last_version = job.version
        self.connected()

    def retry_delay(self, error: MendError) -> float:
        """Seconds to wait before reconnecting after `error`, or raises it when the
        watch should not go on (not a connection failure, or failing for too long)."""
        if isinstance(error, DeadlineExceeded) and self._deadline is not None:
            raise self.timed_out() from error
        if not isinstance(error, Unavailable):
            raise error
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif self._reconnect_for is not None and now - self._failing_since > self._reconnect_for:
            raise error
        # Full jitter keeps many watchers from reconnecting to a restarted server at once.
        delay = random.uniform(self._backoff / 2, self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - now))
        return delay
