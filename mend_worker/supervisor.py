"""A small process supervisor: starts programs, replaces the ones that die, and stops
them all, in reverse order, on SIGINT/SIGTERM. Used by `mend-worker`, `mend-server
--processes N` and `make run`."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the supervisor itself is killed, so even a
    # SIGKILLed supervisor leaves no orphans behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Program:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    # Called after start; returns once the program is ready (or raises).
    ready: Callable[[subprocess.Popen[bytes]], None] | None = None
    stop_grace: float = 10.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    started_at: float = field(default=0.0, init=False)


class Supervisor:
    def __init__(
        self, programs: list[Program], on_started: Callable[[], None] | None = None
    ) -> None:
        self._programs = programs
        self._on_started = on_started
        self._stopping = False

    def _start(self, program: Program) -> None:
        program.process = subprocess.Popen(
            program.argv,
            env=program.env,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches only the supervisor, which then stops
            # everything in order (workers and servers before Redis).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        program.started_at = time.monotonic()
        if program.ready is not None:
            program.ready(program.process)

    def run(self) -> int:
        """Blocks until SIGINT/SIGTERM; returns the exit status for the caller."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for program in self._programs:
                if self._stopping:
                    break
                self._start(program)
            if self._on_started is not None and not self._stopping:
                self._on_started()
            while not self._stopping:
                self._replace_dead()
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _replace_dead(self) -> None:
        for program in self._programs:
            proc = program.process
            if proc is None or proc.poll() is None:
                continue
            # Back off when a program keeps dying at start (1s, 2s, ... 30s).
            if time.monotonic() - program.started_at > 60:
                program.restarts = 0
            delay = min(30.0, 2.0**program.restarts) if program.restarts else 0.0
            log.warning(
                "%s exited with %s; restarting%s",
                program.name,
                proc.returncode,
                f" in {delay:.0f}s" if delay else "",
            )
            program.process = None
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self._stopping:
                time.sleep(0.1)
            if self._stopping:
                return
            program.restarts += 1
            try:
                self._start(program)
            except Exception as exc:  # a failing readiness check: try again later
                log.error("%s did not start: %s", program.name, exc)

    def stop(self) -> None:
        for program in reversed(self._programs):
            proc = program.process
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(program.stop_grace)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.0fs; killing it", program.name, program.stop_grace
                )
                proc.kill()
                proc.wait()
