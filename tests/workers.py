"""Real `mend-worker` processes for tests, a look at them through /proc (what `ps` shows),
and waits on jobs through the gRPC API.

Waits are bounded generously: they catch hangs and lost jobs, they time nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import env_for
from tests.conftest import AUTH

Metadata = tuple[tuple[str, str], ...]
WORKER_BIN = Path(sys.executable).with_name("mend-worker")
# Short leases and backoffs keep crash and retry tests quick; the values are what a
# worker would use in production, only smaller.
FAST_ENV = {
    "MEND_LEASE_SECONDS": "2",
    "MEND_HEARTBEAT_SECONDS": "0.3",
    "MEND_RETRY_BACKOFF_BASE_SECONDS": "0.2",
    "MEND_RETRY_BACKOFF_MAX_SECONDS": "1",
    "MEND_SHUTDOWN_GRACE_SECONDS": "5",
}
WAIT_SECONDS = 30.0
TERMINAL = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED)


# ------------------------------------------------------------------------------ /proc


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def ps_args(pid: int) -> str:
    """The command line as an operator sees it with `ps`."""
    # -ww: unlimited width, whatever COLUMNS the caller's terminal has.
    ps = ["ps", "-ww", "-o", "args=", "-p", str(pid)]
    out = subprocess.run(ps, capture_output=True, text=True)
    return out.stdout.strip()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live direct children of pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def processes_with_env(variable: str) -> list[int]:
    """Every live process whose environment has `variable` ("NAME=value"): a process
    and all it started carry it, wherever they were reparented to."""
    needle = f"\0{variable}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if needle in environ and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def mend_workers_of(redis_url: str) -> dict[int, str]:
    """Every live `mend-worker` process (workers, executors, supervisors) on this machine
    that serves the given Redis, with its command line. Other test runs on the machine
    use other Redis servers, so this sees only the test's own processes."""
    lines = {pid: cmdline(pid) for pid in processes_with_env(f"MEND_REDIS_URL={redis_url}")}
    return {pid: line for pid, line in lines.items() if "mend-worker" in line}


def executor_pids(worker_pid: int) -> list[int]:
    """The worker's `mend-worker --executor-fd N` children (the processes running jobs)."""
    return [pid for pid in children(worker_pid) if "--executor-fd" in cmdline(pid)]


async def eventually(
    check: Callable[[], Any], what: str, within: float = WAIT_SECONDS, every: float = 0.05
) -> Any:
    """Polls check() until it returns something truthy, and returns that."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)


# ---------------------------------------------------------------------------- workers


class WorkerProcess:
    """One `mend-worker` process (`--single` unless other arguments are given)."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ("--single",)) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="mend-worker-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(WORKER_BIN), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def executors(self) -> list[int]:
        return executor_pids(self.pid)

    async def running_executor(self) -> int:
        """The pid of the executor child, once the worker has started one."""
        pids = await eventually(self.executors, f"an executor child of worker {self.pid}")
        return int(pids[0])

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def wait_exit(self, within: float = WAIT_SECONDS) -> int:
        await eventually(lambda: not self.alive, f"worker {self.pid} to exit", within)
        return int(self.process.returncode)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    async def aclose(self) -> None:
        """Stops the worker (and its children) whatever state it is in, without blocking
        the event loop (the in-process gRPC server lives on it)."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await self.wait_exit(within=15)
            except AssertionError:
                self.process.kill()
                await self.wait_exit()
        self.log.close()


class Workers:
    """Starts workers for one test with a common environment; stops them all at the end."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.redis_url = redis_url
        self.env = {**FAST_ENV, **env}
        self.started: list[WorkerProcess] = []

    def start(self, *args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            env_for(self.redis_url, **{**self.env, **env}), args or ("--single",)
        )
        self.started.append(worker)
        return worker

    async def aclose(self) -> None:
        for worker in self.started:
            await worker.aclose()

    def outputs(self) -> str:
        return "\n".join(f"--- worker {w.pid}:\n{w.output()}" for w in self.started)


@contextlib.asynccontextmanager
async def worker_pool(redis_url: str, **env: str) -> AsyncIterator[Workers]:
    workers = Workers(redis_url, **env)
    try:
        yield workers
    finally:
        await workers.aclose()


# ------------------------------------------------------------------------ job watching


async def get_job(stub: Any, job_id: str) -> pb.Job:
    job: pb.Job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    return job


async def watch_until(
    stub: Any,
    job_id: str,
    done: Callable[[pb.Job], bool],
    within: float = WAIT_SECONDS,
    from_version: int | None = None,
    metadata: Metadata = AUTH,
) -> list[pb.Job]:
    """Follows WatchJob until done(job) holds; returns every state seen, the last one
    being the one that satisfied done."""
    request = pb.WatchJobRequest(id=job_id)
    if from_version is not None:
        request.from_version = from_version
    seen: list[pb.Job] = []
    call = stub.WatchJob(request, metadata=metadata)
    try:
        async with asyncio.timeout(within):
            async for event in call:
                if event.HasField("job"):
                    seen.append(event.job)
                    if done(event.job):
                        return seen
    except TimeoutError:
        states = [(pb.JobStatus.Name(j.status), j.attempt, j.error) for j in seen]
        raise AssertionError(f"job {job_id} not done within {within}s: {states}") from None
    finally:
        call.cancel()
    raise AssertionError(f"WatchJob of {job_id} ended early: {seen}")


async def wait_terminal(
    stub: Any, job_id: str, within: float = WAIT_SECONDS, metadata: Metadata = AUTH
) -> pb.Job:
    done = await watch_until(stub, job_id, lambda j: j.status in TERMINAL, within, None, metadata)
    return done[-1]


async def history(stub: Any, job_id: str) -> list[pb.Job]:
    """Every recorded state of a finished job, from its event log."""
    return await watch_until(stub, job_id, lambda j: j.status in TERMINAL, from_version=0)


def statuses(states: list[pb.Job]) -> list[str]:
    """Status names of consecutive states, without repeats (progress updates)."""
    names: list[str] = []
    for job in states:
        name = pb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower()
        if not names or names[-1] != name:
            names.append(name)
    return names


async def submit(
    stub: Any, request: pb.SubmitImageResizeRequest, metadata: Metadata = AUTH
) -> str:
    try:
        response = await stub.SubmitImageResize(request, metadata=metadata)
    except grpc.aio.AioRpcError as err:
        raise AssertionError(f"submit failed: {err.code()} {err.details()}") from None
    return str(response.job_id)
