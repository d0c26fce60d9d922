"""Replicated Redis topologies on loopback ports, for tests and benchmarks: a Redis Cluster
(masters with a replica each, made with `redis-cli --cluster create`) and a Sentinel setup
(a master, a replica, a sentinel), each with a way to lose its master."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

from mend_devkit.ports import free_port, wait_for_port
from mend_devkit.redis_server import RedisServer, redis_binary

T = TypeVar("T")

# How long a node may be unreachable before the others fail it over: short, so a test's
# failover takes a couple of seconds, not the default 15.
NODE_TIMEOUT_MS = 1000
SERVICE = "mymaster"
# A replica's first sync starts at once, not after the default 5 s wait for others.
_FAST_SYNC = {"repl-diskless-sync-delay": "0"}


def _cli_binary() -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError(
            "redis-cli is not installed (Debian's redis-tools, which redis-server depends on)"
        )
    return binary


def _until(check: Callable[[], T | None], what: str, timeout: float) -> T:
    """Polls check() until it returns something other than None (errors count as None)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except redis.RedisError:
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class RedisCluster:
    """`masters` masters with `replicas` replicas each, every node a RedisServer with its
    own temporary directory; url is the `redis+cluster://` form MEND_REDIS_URL takes."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(masters * (1 + replicas)):
                self.nodes.append(
                    RedisServer(
                        {
                            "cluster-enabled": "yes",
                            "cluster-config-file": "nodes.conf",
                            "cluster-node-timeout": str(NODE_TIMEOUT_MS),
                            # The bus port is free_port()'s, not port + 10000 (maybe taken).
                            "cluster-port": str(free_port()),
                            **_FAST_SYNC,
                        }
                    )
                )
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            create = [_cli_binary(), "--cluster", "create", *addresses]
            create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
            out = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
            for node in self.nodes:
                self._wait_ok(node)
            # The replicas' roles spread by gossip: wait until every node knows them all.
            for node in self.nodes:
                _until(
                    lambda node=node: True  # type: ignore[misc]
                    if sum(role == "master" for role, _ in self._roles(node).values()) == masters
                    else None,
                    f"port {node.port} to know every replica",
                    30,
                )
            # A replica that never synced with its master would not take over from it.
            for node in self.nodes:
                _until(
                    lambda node=node: True  # type: ignore[misc]
                    if node.info("replication").get("master_link_status", "up") == "up"
                    else None,
                    f"port {node.port} to sync with its master",
                    30,
                )
        except BaseException:
            self.stop()
            raise
        self.url = "redis+cluster://" + ",".join(addresses[:masters])

    @staticmethod
    def _wait_ok(node: RedisServer, timeout: float = 30) -> None:
        def ok() -> bool | None:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO")
            return True if "cluster_state:ok" in str(info) else None

        _until(ok, f"cluster_state:ok on port {node.port}", timeout)

    def alive(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process.poll() is None]

    def _roles(self, seen_by: RedisServer | None = None) -> dict[int, tuple[str, int | None]]:
        """port -> (role, port of its master) as a live node's CLUSTER NODES tells it."""
        with (seen_by or self.alive()[0]).client() as client:
            table = client.execute_command("CLUSTER", "NODES")
        lines = str(table).splitlines()
        ids: dict[str, int] = {}
        parsed = []
        for line in lines:
            node_id, address, flags, master_id = line.split()[:4]
            port = int(address.split("@")[0].rsplit(":", 1)[1])
            ids[node_id] = port
            parsed.append((port, flags, master_id))
        out: dict[int, tuple[str, int | None]] = {}
        for port, flags, master_id in parsed:
            role = "fail" if "fail" in flags.split(",") else (
                "master" if "master" in flags else "replica"
            )
            out[port] = (role, ids.get(master_id))
        return out

    def masters(self) -> list[RedisServer]:
        roles = self._roles()
        return [n for n in self.alive() if roles.get(n.port, ("",))[0] == "master"]

    def master_of(self, key: str) -> RedisServer:
        """The live master that serves the key's slot now."""
        with self.alive()[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            owners = client.execute_command("CLUSTER", "SHARDS")
        for shard in owners:
            shard = _pairs(shard)
            ranges = shard["slots"]
            if any(int(ranges[i]) <= slot <= int(ranges[i + 1]) for i in range(0, len(ranges), 2)):
                for node in map(_pairs, shard["nodes"]):
                    if node["role"] == "master" and node["health"] == "online":
                        return self._node(int(node["port"]))
        raise RuntimeError(f"no live master serves slot {slot}")

    def _node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def flushall(self) -> None:
        """Empties every master (their replicas follow)."""
        for node in self.masters():
            with node.client() as client:
                client.flushall()

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        return [self._node(p) for p, (_, of) in self._roles().items() if of == master.port]

    def kill_master(self, master: RedisServer, timeout: float = 30) -> RedisServer:
        """SIGKILLs the master and waits until one of its replicas has taken over and
        every live node sees the cluster as ok again; returns the new master."""
        replicas = self.replicas_of(master)
        master.kill()
        return self.wait_failover(replicas, timeout)

    def wait_failover(self, replicas: list[RedisServer], timeout: float = 30) -> RedisServer:
        """Waits until one of `replicas` (of a master that died) is a master, and the
        cluster is ok again everywhere; returns it."""

        def promoted() -> RedisServer | None:
            roles = self._roles()
            return next((r for r in replicas if roles.get(r.port, ("",))[0] == "master"), None)

        new = _until(promoted, f"one of ports {[r.port for r in replicas]} to take over", timeout)
        for node in self.alive():
            self._wait_ok(node, timeout)
        return new

    def restart(self, node: RedisServer) -> None:
        """Starts a killed node again from its data directory; it rejoins as a replica
        of the master that took over."""
        node.restart()
        self._wait_ok(node)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _pairs(reply: object) -> dict:
    """CLUSTER SHARDS answers flat [name, value, ...] lists (RESP2) or dicts (RESP3)."""
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    items = list(reply)  # type: ignore[call-overload]
    return {str(items[i]): items[i + 1] for i in range(0, len(items), 2)}


class RedisSentinel:
    """A master, a replica of it and one sentinel watching them (quorum 1); url is the
    `redis+sentinel://` form MEND_REDIS_URL takes."""

    def __init__(self) -> None:
        self.master = RedisServer(_FAST_SYNC)
        self.replica: RedisServer | None = None
        self.sentinel: subprocess.Popen[bytes] | None = None
        self.dir = Path(self.master.dir) / "sentinel"
        try:
            self.replica = RedisServer({**_FAST_SYNC, "replicaof": f"127.0.0.1 {self.master.port}"})
            _until(self._replicated, "the replica to sync", 30)
            self.sentinel_port = free_port()
            self.dir.mkdir()
            conf = self.dir / "sentinel.conf"  # sentinel rewrites it: a file of its own
            conf.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"logfile {self.dir / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            self.sentinel = subprocess.Popen(
                [redis_binary(), str(conf), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port(self.sentinel_port, self.sentinel, "redis-sentinel")
            _until(self._sentinel_sees_replica, "the sentinel to find the replica", 30)
        except BaseException:
            self.stop()
            raise
        self.url = f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}"

    def _replicated(self) -> bool | None:
        assert self.replica is not None
        info = self.replica.info("replication")
        return True if info.get("master_link_status") == "up" else None

    def _sentinel_client(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, decode_responses=True)

    def _sentinel_sees_replica(self) -> bool | None:
        with self._sentinel_client() as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
        # Only a replica the sentinel sees connected and in sync is one it can promote.
        good = [r for r in map(_pairs, replicas) if r["flags"] == "slave"]
        return True if any(r["master-link-status"] == "ok" for r in good) else None

    def master_port(self) -> int:
        """The master's port as the sentinel reports it."""
        with self._sentinel_client() as client:
            host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def _node(self, port: int) -> RedisServer:
        return next(n for n in (self.master, self.replica) if n is not None and n.port == port)

    def failover(self, *, kill: bool = False, timeout: float = 30) -> RedisServer:
        """Moves the master role to the other server and returns it: with kill, by
        SIGKILLing the master (the sentinel notices it is down); else by asking the
        sentinel (SENTINEL FAILOVER, the old master becomes a replica)."""
        old = self._node(self.master_port())
        if kill:
            old.kill()
        else:
            with self._sentinel_client() as client:
                client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        new_port = _until(
            lambda: port if (port := self.master_port()) != old.port else None,
            "the sentinel to promote the replica",
            timeout,
        )
        new = self._node(new_port)
        _until(
            lambda: True if new.info("replication").get("role") == "master" else None,
            "the replica to become master",
            timeout,
        )
        return new

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.terminate()
            self.sentinel.wait(10)
        for node in (self.replica, self.master):
            if node is not None:
                node.stop()
