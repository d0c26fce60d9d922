"""Loopback ports for servers started by `make run`, tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes],
    what: str,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> None:
    """Returns once host:port accepts a connection. Raises RuntimeError when `process`
    (the one that should listen there) exits first, TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what} did not open {host}:{port} within {timeout:.0f}s"
                ) from None
            time.sleep(0.05)
