"""ChildExecutor: runs tasks in a child process that can be killed.

Pillow cannot be interrupted from another thread, so a job over its timeout, or one
cancelled while running, is stopped by killing the child; the worker process lives on and
starts a fresh child for the next job. The child is `mend-worker --executor-fd N`, talking
over a socketpair with multiprocessing's framing: the parent sends the child its
`ChildSettings` once, then a job's id, `JobSpec` and the trace context of the worker's
span for it (W3C traceparent, "" untraced); the child answers with `Progress`
messages and one `Completed` or `Failed`."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from mend_core.errors import PermanentError, TransientError
from mend_core.job import JobSpec
from mend_core.logs import configure_logging, current_job_id
from mend_core.operations import OperationLimits
from mend_core.results import JobResult
from mend_core.settings import Settings
from mend_core.storage import open_storage
from mend_core.telemetry.tracing import TRACEPARENT, tracing_from_env
from mend_worker.execute import execute
from mend_worker.supervisor import die_with_parent
from mend_worker.traced_storage import TracedStorage

log = logging.getLogger(__name__)

OnProgress = Callable[[int, str], Awaitable[None]]
# Short jobs finish before anyone could watch their progress: progress is relayed only for
# jobs that have been running this long. The child drops earlier updates itself, which
# saves two messages (and wake-ups of the worker) per short job.
PROGRESS_AFTER_SECONDS = 0.25


@dataclass(frozen=True)
class ChildSettings:
    """The only settings the child gets: where objects are, and the operations' limits."""

    storage: str
    storage_root: str
    s3_endpoint_url: str | None
    s3_region: str | None
    limits: OperationLimits
    log_level: str
    log_format: str
    progress_after_seconds: float = PROGRESS_AFTER_SECONDS

    @classmethod
    def from_settings(cls, s: Settings) -> ChildSettings:
        return cls(
            s.storage,
            str(s.storage_root),
            s.s3_endpoint_url,
            s.s3_region,
            OperationLimits.from_settings(s),
            s.log_level,
            s.log_format,
        )


@dataclass(frozen=True)
class Progress:
    percent: int
    message: str


@dataclass(frozen=True)
class Completed:
    result: JobResult


@dataclass(frozen=True)
class Failed:
    """permanent: retrying cannot help; else the job may be retried."""

    error: str
    permanent: bool


Outcome = Completed | Failed


class ChildExecutor:
    def __init__(
        self, settings: Settings, command: list[str], *, child: ChildSettings | None = None
    ) -> None:
        """command: how to start `mend-worker` (the child gets --executor-fd appended);
        child: the child's settings, when not derived from `settings`."""
        self._child_settings = child or ChildSettings.from_settings(settings)
        self._command = command
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = socket.socketpair()
        self._proc = subprocess.Popen(
            [*self._command, "--executor-fd", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            # A SIGKILLed worker must not leave its child running the job on its own.
            preexec_fn=die_with_parent,
        )
        child.close()
        conn = Connection(parent.detach())
        conn.send(self._child_settings)
        self._conn = conn
        return conn

    def start(self) -> None:
        """Starts the child now if none runs, so its start-up is not paid by a job."""
        if self._conn is None:
            self._start()

    async def run(
        self, job_id: str, spec: JobSpec, on_progress: OnProgress, *, trace_parent: str = ""
    ) -> Outcome:
        """Runs the job in the child. Whatever interrupts the conversation before the
        outcome arrives (a cancellation, on_progress raising) kills the child: a reply
        left unread would otherwise be taken for the next job's."""
        conn = self._conn or self._start()
        conn.send((job_id, spec, trace_parent))
        try:
            return await self._conversation(conn, job_id, on_progress)
        except BaseException:
            self.kill()
            raise

    async def _conversation(
        self, conn: Connection, job_id: str, on_progress: OnProgress
    ) -> Outcome:
        while True:
            try:
                message = await self._recv(conn)
            except (EOFError, OSError):
                code = self._reap()
                return Failed(f"worker process crashed while processing (exit {code})", False)
            match message:
                case (str(about), reply) if about != job_id:
                    self.kill()
                    return Failed(f"internal error: a reply for job {about} ({reply!r})", False)
                case (_, Progress(percent, text)):
                    await on_progress(percent, text)
                case (_, Completed() | Failed() as outcome):
                    return outcome
                case _:
                    self.kill()
                    return Failed(f"internal error: bad reply {message!r}", False)

    @staticmethod
    async def _recv(conn: Connection) -> object:
        loop = asyncio.get_running_loop()
        if not conn.poll():
            readable: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(conn.fileno(), wake)
            try:
                await readable
            finally:
                loop.remove_reader(conn.fileno())
        return conn.recv()

    def kill(self) -> None:
        """Stops the running task at once; start() or the next run starts a new child."""
        if self._proc is not None:
            self._proc.kill()
        self._reap()

    def _reap(self) -> int | None:
        code = None
        if self._proc is not None:
            code = self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
        return code

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the child exits on EOF
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc, self._conn = None, None


def child_main(fd: int) -> None:
    """The executor child: run jobs from the parent until it closes the pipe."""
    conn = Connection(fd)
    settings: ChildSettings = conn.recv()
    configure_logging(settings)
    # The same OTEL_* environment as the worker; spans are exported as the child exits.
    tracing = tracing_from_env("mend-worker")
    storage = open_storage(
        settings.storage,  # type: ignore[arg-type]
        root=Path(settings.storage_root),
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    if tracing.enabled:
        storage = TracedStorage(storage, tracing)

    started, job_id = 0.0, ""

    def progress(percent: int, message: str) -> None:
        # The one place progress is throttled: short jobs finish before anyone could
        # watch, so their updates would only cost messages and Redis writes.
        if time.monotonic() - started >= settings.progress_after_seconds:
            conn.send((job_id, Progress(percent, message)))

    while True:
        try:
            job_id, spec, trace_parent = conn.recv()
        except (EOFError, OSError):
            tracing.shutdown()
            return
        started = time.monotonic()
        outcome: Outcome
        current_job_id.set(job_id)  # until the next job: the child works on nothing else
        span = tracing.start(
            f"execute {spec.type}", parent={TRACEPARENT: trace_parent},
            attributes={"mend.job.id": job_id, "mend.job.type": spec.type},
        )
        try:
            outcome = Completed(execute(spec, storage, settings.limits, progress))
        except PermanentError as exc:
            outcome = Failed(str(exc), True)
        except TransientError as exc:
            outcome = Failed(str(exc), False)
        except MemoryError:
            outcome = Failed("out of memory while processing the image", True)
        except Exception as exc:  # a bug, not bad input: say what it was
            log.exception("job %s raised %r", job_id, exc)
            outcome = Failed(f"internal error: {type(exc).__name__}: {exc}", True)
        if isinstance(outcome, Failed):
            span.fail(outcome.error)
        span.end()
        conn.send((job_id, outcome))
