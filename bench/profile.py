"""Profiles a running process with py-spy and summarises where its CPU time goes.

`python -m bench.profile STACKS.txt` prints the summary of a recorded profile (py-spy's
`raw` format: collapsed stacks, one `frame;frame;... count` per line). The `--profile`
options of `python -m bench api`, `gateway`, `watch` and `drain` record through it.
py-spy comes from bench/requirements.txt."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench import report
from bench.services import BIN

# The package a frame's file belongs to, first match wins. With --native, frames of C
# code name their shared object or C file.
PACKAGES = (
    # main.py is the root of every stack of the main thread, not work of its own.
    ("mend", re.compile(r"\((mend_server|mend_core|mend)/(?!main\.py)")),
    ("redis-py", re.compile(r"\((redis|hiredis)/")),
    ("grpc", re.compile(r"\(grpc[\w]*/|\(src/python/grpcio|cygrpc")),
    ("protobuf", re.compile(r"\(google/|_upb|protobuf")),
    ("json", re.compile(r"\(json/|_json")),
    ("asyncio", re.compile(r"\(asyncio/|_asynciomodule|selector|\(selectors\.py")),
    ("sockets, syscalls", re.compile(r"socketmodule|\(libc[.-]")),
)
# Who a sample is charged to: the innermost frame of one of these, so that a socket write
# made by redis-py is redis-py's cost, and the rest falls to the leaf's package.
OWNERS = ("redis-py", "json", "protobuf", "mend")
# Leaves of a thread waiting for work (py-spy --native cannot tell these from work).
IDLE = re.compile(r"^(epoll_wait|epoll_pwait|select_epoll_poll_impl|pthread_cond_\w*wait|"
                  r"__futex\w*|futex\w*|sem_\w*wait|poll|nanosleep|clock_nanosleep) ")


def py_spy() -> str:
    found = shutil.which("py-spy", path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -r bench/requirements.txt")
    return found


def record(
    pid: int,
    out: Path,
    *,
    seconds: float | None = None,
    rate: int = 200,
    native: bool = True,
    subprocesses: bool = False,
) -> subprocess.Popen[bytes]:
    """Starts sampling pid, all threads, in py-spy's raw format, for `seconds` (None: until
    it gets SIGINT). native: C frames too, which pauses the process at each sample, so it
    runs slower while profiled (read the shares, not the speed) and native leaves such as
    write(2) get more than their share."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate),
            "--format", "raw", "--output", str(out)]
    if seconds is not None:
        argv += ["--duration", str(max(1, round(seconds)))]
    if native:
        argv.append("--native")
    if subprocesses:
        argv.append("--subprocesses")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def busy_stacks(path: Path, idle: re.Pattern[str] = IDLE) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) of each stack in a raw profile, outermost frame first, leaving
    out those whose leaf matches `idle` (a thread waiting for work)."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not idle.search(frames[-1]):
            yield frames, int(count)


def package(frame: str) -> str:
    for name, pattern in PACKAGES:
        if pattern.search(frame):
            return name
    return "other"


def summarise(path: Path, top: int = 15) -> str:
    """Per package: the time charged to it (see OWNERS), its own (self) time and the time
    spent under its frames (inclusive); then the functions with the most self time."""
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    owner: Counter[str] = Counter()
    total = 0
    for frames, n in busy_stacks(path):
        total += n
        self_pkg[package(frames[-1])] += n
        self_fn[frames[-1]] += n
        packages = [package(f) for f in frames]
        owner[next((p for p in reversed(packages) if p in OWNERS), packages[-1])] += n
        for name in set(packages):
            incl_pkg[name] += n
    if not total:
        return f"{path}: no samples"

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}"

    pkgs = sorted(set(self_pkg) | set(incl_pkg), key=lambda k: -owner[k])
    out = [f"{path.name}: {total} samples",
           report.text_table(["package", "charged %", "self %", "under it %"],
                             [[p, pct(owner[p]), pct(self_pkg[p]), pct(incl_pkg[p])]
                              for p in pkgs]),
           "", report.text_table(["function (self)", "%"],
                                 [[f, pct(n)] for f, n in self_fn.most_common(top)])]
    return "\n".join(out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(Path(arg)), end="\n\n")
