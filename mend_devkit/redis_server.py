"""redis-server as `make run` starts it (AOF on, fsync every second, no RDB snapshots),
on a loopback port: the command line for the stack, and a process with its own
temporary directory for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from mend_devkit.ports import free_port


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed. `make run` and `make test` install it from "
            "Debian's packages; install it yourself (apt-get install redis-server), or set "
            "MEND_REDIS_URL to a Redis of your own."
        )
    return binary


def redis_argv(
    binary: str, port: int, data_dir: Path, extra: dict[str, str] | None = None
) -> list[str]:
    """The command line: data (AOF) and log in data_dir, listening on 127.0.0.1:port;
    `extra` settings (cluster, replication, TLS) come after these."""
    data_dir = data_dir.resolve()
    settings = {
        "bind": "127.0.0.1",
        "port": str(port),
        "dir": str(data_dir),
        "appendonly": "yes",  # accepted means durable
        "appendfsync": "everysec",
        "save": "",  # no RDB snapshots: their fork would only add latency
        "protected-mode": "yes",
        "loglevel": "warning",
        "logfile": str(data_dir / "redis.log"),
        **(extra or {}),
    }
    # Flags as pairs, one per line above, so each setting reads at a glance.
    return [binary, *(arg for name, value in settings.items() for arg in (f"--{name}", value))]


class RedisServer:
    """A redis-server process on a free port, its data in a temporary directory that
    stop() removes. `extra`: more settings (redis_argv), e.g. to make it a cluster node."""

    def __init__(self, extra: dict[str, str] | None = None, *, port: int | None = None) -> None:
        self.binary = redis_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="mend-redis-"))
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra = dict(extra or {})
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            redis_argv(self.binary, self.port, self.dir, self.extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the AOF already holds survives."""
        self.process.kill()
        self.process.wait(10)

    def restart(self) -> None:
        """Starts again on the same port from the same data directory (AOF replayed)."""
        self._start()

    def _wait_ready(self) -> None:
        # PING rather than a connect: it also waits out the loading of the AOF.
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError(f"redis-server did not start:\n{self.tail()}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def tail(self, lines: int = 30) -> str:
        try:
            log = (self.dir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(log.splitlines()[-lines:])

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def info(self, section: str) -> dict:
        with self.client() as client:
            return dict(client.info(section))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    """This process's environment, for a Mend process using the Redis at redis_url."""
    env = dict(os.environ)
    env.update({"MEND_REDIS_URL": redis_url, **extra})
    return env
