"""A real redis-server on a free port, in a temporary directory, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from mend_devkit.ports import free_port


class RedisServer:
    """A redis-server process with AOF on, as `make run` starts it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make redis` (or `make test`)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="mend-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--appendonly", "yes", "--save", "",
                "--protected-mode", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the AOF already holds survives."""
        self.process.kill()
        self.process.wait(10)

    def restart(self) -> None:
        """Starts again on the same port from the same data directory (AOF replayed)."""
        self._start()

    def _wait_ready(self) -> None:
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
            finally:
                client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MEND_REDIS_URL": redis_url, **extra})
    return env
