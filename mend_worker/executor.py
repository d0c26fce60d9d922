"""ChildExecutor: runs tasks in a child process that can be killed.

Pillow cannot be interrupted from another thread, so a job over its timeout, or one
cancelled while running, is stopped by killing the child; the worker process lives on and
starts a fresh child for the next job. The child is `mend-worker --executor-fd N`, talking
over a socketpair with multiprocessing's framing."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from mend_core.errors import PermanentError, TransientError
from mend_core.logs import configure_logging, current_job_id
from mend_core.settings import Settings
from mend_core.storage import open_storage
from mend_worker.operations import Task, run
from mend_worker.supervisor import die_with_parent

log = logging.getLogger(__name__)

OnProgress = Callable[[int, str], Awaitable[None]]
# Short jobs finish before anyone could watch their progress: progress is relayed only for
# jobs that have been running this long. The child drops earlier updates itself, which
# saves two messages (and wake-ups of the worker) per short job.
PROGRESS_AFTER_SECONDS = 0.25


@dataclass(frozen=True)
class Outcome:
    """How a task ended: "ok" (result set), "permanent" or "transient" (error set)."""

    kind: str
    result: dict | None = None
    error: str = ""


class ChildExecutor:
    def __init__(self, settings: Settings, command: list[str]) -> None:
        """command: how to start `mend-worker` (the child gets --executor-fd appended)."""
        self._settings_json = settings.model_dump_json()
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
        conn.send_bytes(self._settings_json.encode())
        self._conn = conn
        return conn

    def start(self) -> None:
        """Starts the child now if none runs, so its start-up is not paid by a job."""
        if self._conn is None:
            self._start()

    async def run(self, task: Task, on_progress: OnProgress) -> Outcome:
        conn = self._conn or self._start()
        conn.send(asdict(task))
        while True:
            try:
                message = await self._recv(conn)
            except (EOFError, OSError):
                code = self._reap()
                return Outcome(
                    "transient", error=f"worker process crashed while processing (exit {code})"
                )
            match message:
                case ("progress", int(percent), str(text)):
                    await on_progress(percent, text)
                case ("ok", dict(result)):
                    return Outcome("ok", result=result)
                case (str(kind), str(error)):
                    return Outcome(kind, error=error)
                case _:
                    return Outcome("permanent", error=f"internal error: bad reply {message!r}")

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
    """The executor child: run tasks from the parent until it closes the pipe."""
    conn = Connection(fd)
    settings = Settings.model_validate_json(conn.recv_bytes())
    configure_logging(settings)
    storage = open_storage(
        settings.storage,
        root=Path(settings.storage_root),
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )

    started = 0.0

    def progress(percent: int, message: str) -> None:
        if time.monotonic() - started >= PROGRESS_AFTER_SECONDS:
            conn.send(("progress", percent, message))

    while True:
        try:
            task = Task(**conn.recv())
        except (EOFError, OSError):
            return
        started = time.monotonic()
        current_job_id.set(task.job_id)  # until the next task: the child works on nothing else
        try:
            conn.send(("ok", run(task, storage, settings, progress)))
        except PermanentError as exc:
            conn.send(("permanent", str(exc)))
        except TransientError as exc:
            conn.send(("transient", str(exc)))
        except MemoryError:
            conn.send(("permanent", "out of memory while processing the image"))
        except Exception as exc:  # a bug, not bad input: say what it was
            log.exception("job %s raised %r", task.job_id, exc)
            conn.send(("permanent", f"internal error: {type(exc).__name__}: {exc}"))
