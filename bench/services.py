"""Real processes for benchmarks: the Mend gRPC server, and helpers to start, wait for,
measure (CPU time) and stop a process (redis-server and free ports: mend_devkit).

Everything listens on loopback on a free port; logs go to a temporary directory that is
removed on stop unless the process failed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mend_devkit import ports
from mend_devkit.ports import free_port

if TYPE_CHECKING:
    from mend_core.jobstate.partitions import Partitions

# The interpreter running the benchmark is the project's (.venv/bin/python), so its
# directory holds the project's console scripts (mend-server, mend-worker).
BIN = Path(sys.executable).parent
# The repository, put on the children's PYTHONPATH so that they find `bench` (which is
# not installed) from their own working directories.
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "bench-key"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after it do not.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (a supervisor and the servers it runs), from
    /proc/PID/task/TID/children; processes that are gone are left out."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        tree.append(p)
    return tree


def run_seconds(pid: int) -> float:
    """Time on a CPU of all the live threads of a process, to the ns
    (/proc/PID/task/*/schedstat; cpu_seconds counts 10 ms ticks, too coarse for a job's few ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):  # a thread may end between listing and reading
            total += int(task.read_text().split()[0])
    return total / 1e9


def tree_cpu_seconds(pid: int, measure: Callable[[int], float] = cpu_seconds) -> float:
    """CPU time of a process and all its descendants (see process_tree), each by `measure`
    (cpu_seconds or run_seconds)."""
    total = 0.0
    for p in process_tree(pid):
        # A process may end between the listing and the read.
        with contextlib.suppress(OSError):
            total += measure(p)
    return total


def partitions() -> Partitions:
    """The job store's partitions as the Mend a benchmark starts has them (MEND_PARTITIONS,
    read by Settings); mend_core imported when called, as in the benchmarks' own code."""
    from mend_core.jobstate.partitions import Partitions
    from mend_core.settings import Settings

    return Partitions(Settings().partitions)


def _tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of TCP sockets with local port `port` in `state` ("0A": listening, "01":
    established), from /proc/net/tcp and tcp6 (gRPC listens on dual-stack sockets)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == state:
                    inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def connections_by_process(pids: Sequence[int], port: int) -> list[int]:
    """How many established connections to `port` each process holds (their server
    ends): SO_REUSEPORT spreads connections over processes by a hash, not evenly."""
    established = _tcp_sockets(port, "01")
    return [len(established & _socket_inodes(pid)) for pid in pids]


def wait_for_listeners(process: Process, port: int, count: int, timeout: float = 20.0) -> None:
    """Waits until `count` sockets listen on `port` (each process of a SO_REUSEPORT
    group has its own)."""
    deadline = time.monotonic() + timeout
    while len(_tcp_sockets(port, "0A")) < count:
        process.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{process.name}: fewer than {count} listeners on port {port}:\n{process.tail()}"
            )
        time.sleep(0.05)


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used since boot, summed over cores."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class Process:
    """A child process with its output in a log file; stop() ends it (SIGTERM, then SIGKILL)."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        root: Path = ROOT,
    ) -> None:
        """root: the tree whose code the process runs (first on its PYTHONPATH)."""
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"mend-bench-{name}-"))
        self.log = self.dir / "output.log"
        env = dict(env or os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=self.dir,
            )
        self.pid = self.popen.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(process: Process, port: int, timeout: float = 20.0) -> None:
    try:
        ports.wait_for_port(port, process.popen, process.name, timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}:\n{process.tail()}") from None


def python_module(module: str, *args: str, uvloop: bool = False) -> list[str]:
    """argv running a module with the project's interpreter; with uvloop, through
    bench._uvloop, which installs uvloop's event loop policy first."""
    if uvloop:
        return [sys.executable, "-m", "bench._uvloop", module, *args]
    return [sys.executable, "-m", module, *args]


def start_mend_server(
    redis_url: str,
    *,
    uvloop: bool = False,
    extra_env: Mapping[str, str] | None = None,
    processes: int | None = None,
    root: Path = ROOT,
) -> tuple[Process, int]:
    """The real `mend-server` (its console script) on a free port, API key `bench-key`,
    running the code of the tree at `root`. With `processes`, MEND_SERVER_PROCESSES=N, and
    it returns once all N listen."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "MEND_REDIS_URL": redis_url,
            "MEND_GRPC_PORT": str(port),
            "MEND_API_KEYS": API_KEY,
            **({"MEND_SERVER_PROCESSES": str(processes)} if processes else {}),
            **(extra_env or {}),
        }
    )
    argv = (
        python_module("mend_server.main", uvloop=True) if uvloop else [str(BIN / "mend-server")]
    )
    process = Process("mend-server", argv, env=env, root=root)
    try:
        wait_for_port(process, port)
        if processes and processes > 1:
            wait_for_listeners(process, port, processes)
    except BaseException:
        process.stop()
        raise
    return process, port
