"""Partitions: the keyspace split into P parts, each under its own Redis Cluster hash tag, so
that a cluster spreads the jobs over its masters while every transition stays one atomic
script on one node.

- Partition p's keys start with `mend:{<tag p>}:` (`Keys` for that prefix). Its tag is the
  first of `p<pp>`, `p<pp>.1`, `p<pp>.2`, ... whose CRC16 slot lies in the middle half of
  the p-th P-th of the 16384 slots, so `redis-cli --cluster create`, which gives each master
  one contiguous, equal range of slots, puts P/masters partitions on each master whenever
  the masters divide P (the default 12: 2, 3, 4 or 6 masters). With P = 1 the one
  partition is today's `mend:{jobs}:`. The tags are a function of P alone: never change it.
- A job's partition follows from its id: a job id is a uuid4 whose first four hex digits,
  as a number, are p modulo P (`new_job_id`), so every call on a job finds its keys with no
  lookup. New jobs are spread at random; a request_id's job goes to the partition its
  (tenant, request_id) hashes to, so a replay finds the request key; a batch lives in the
  partition of its (tenant, batch id), so it stays all-or-nothing.
- Global keys, outside every partition, under `{jobs}`: the workers registry, the wake
  lists (a token naming a partition per queued job; pushed by the caller of a script, as
  a script touches one partition only) and P itself, stored when a deployment first starts
  (`claim`): a process configured with another P refuses to start.
"""

from __future__ import annotations

import functools
import secrets
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from redis.asyncio import Redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError, TimeoutError, TryAgainError

from mend_core.jobstate.keys import Keys
from mend_core.redis_client import is_cluster, on_key_node

# Sends commands that all go to the node of a key (the first argument): their replies.
OnNode = Callable[[str, list[tuple[Any, ...]]], Awaitable[list[Any]]]

DEFAULT_PARTITIONS = 12
# The wake lists keep at most this many tokens (a worker drains what it finds anyway).
WAKE_MAXLEN = 10_000
MAX_PARTITIONS = 256
GLOBAL_PREFIX = "mend:{jobs}:"

# Keys outside the partitions: name -> (key after GLOBAL_PREFIX, Redis type, what it holds).
# Python writes them; no script touches them. README's "Redis keys" lists them.
GLOBAL_KEYS: dict[str, tuple[str, str, str]] = {
    "workers": ("workers", "zset", "worker ids by last registration (ms)"),
    "wake": ("wake", "list", "a partition number per enqueue; idle workers BLPOP it"),
    "schedule_wake": ("schedule:wake", "list", "a token per scheduled job; housekeeping BLPOPs it"),
    "partitions": ("partitions", "string", "P, stored by the first process to start"),
}


def single_node(redis: Redis) -> bool:
    """Whether every key is on one node (a plain Redis or a Sentinel-managed master, not a
    cluster client). There a script may also touch keys outside its partition (the wake
    lists, the other partitions' queues), given as extra KEYS, which saves a round trip;
    on a cluster those live on other nodes, so the caller sends separate commands."""
    return not is_cluster(redis)


class PartitionsMismatch(SystemExit):
    """The configured P is not the one the deployment was created with: the process stops
    with this message."""

    def __init__(self, configured: int, stored: int) -> None:
        super().__init__(
            f"MEND_PARTITIONS={configured}, but this Redis holds a deployment created with "
            f"{stored} partitions: set MEND_PARTITIONS={stored} (README: Partitions says how "
            "to change it)"
        )
        self.configured, self.stored = configured, stored


@functools.cache
def partition_tags(count: int) -> tuple[str, ...]:
    """The hash tag of each of `count` partitions (see the module docstring)."""
    if count == 1:
        return ("jobs",)
    tags = []
    width = REDIS_CLUSTER_HASH_SLOTS / count
    for p in range(count):
        low, high = p * width + width / 4, (p + 1) * width - width / 4
        n = 0
        while True:
            tag = f"p{p:02d}" if n == 0 else f"p{p:02d}.{n}"
            if low <= key_slot(tag.encode()) < high:
                break
            n += 1
        tags.append(tag)
    return tuple(tags)


def _spread(*parts: str) -> int:
    return zlib.crc32("\0".join(parts).encode())


@dataclass(frozen=True)
class Partitions:
    count: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be 1..{MAX_PARTITIONS}, not {self.count}")

    @cached_property
    def keys(self) -> tuple[Keys, ...]:
        """Each partition's keys, by partition number."""
        return tuple(Keys(f"mend:{{{tag}}}:") for tag in partition_tags(self.count))

    def __getitem__(self, partition: int) -> Keys:
        return self.keys[partition]

    def __len__(self) -> int:
        return self.count

    def of_job(self, job_id: str) -> int:
        """The partition of a job, from its id (an id that is no job's: any partition)."""
        try:
            return int(job_id[:4], 16) % self.count
        except ValueError:
            return 0

    def job_keys(self, job_id: str) -> Keys:
        return self.keys[self.of_job(job_id)]

    def new_job_id(self, partition: int) -> str:
        """A random uuid4 whose first 16 bits are `partition` modulo P."""
        high = secrets.randbelow(0x10000 // self.count) * self.count + partition
        # uuid4's own formatting, without parsing a UUID back from hex (a submit's hot path).
        h = f"{high:04x}{uuid.uuid4().hex[4:]}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def random(self) -> int:
        return secrets.randbelow(self.count)

    def of_request(self, tenant: str, request_id: str) -> int:
        return _spread(tenant, "request", request_id) % self.count

    def of_batch(self, tenant: str, batch_id: str) -> int:
        return _spread(tenant, "batch", batch_id) % self.count

    def home(self, tenant: str) -> int:
        """The partition holding a tenant's own keys outside its jobs (its submit rate)."""
        return _spread(tenant) % self.count

    def _global(self, name: str) -> str:
        return GLOBAL_PREFIX + GLOBAL_KEYS[name][0]

    @cached_property
    def workers(self) -> str:
        return self._global("workers")

    @cached_property
    def wake(self) -> str:
        return self._global("wake")

    @cached_property
    def schedule_wake(self) -> str:
        return self._global("schedule_wake")

    @cached_property
    def stored_count(self) -> str:
        return self._global("partitions")

    async def claim(self, redis: Redis) -> None:
        """Stores P if this Redis has none yet; PartitionsMismatch if it has another."""
        await redis.set(self.stored_count, self.count, nx=True)
        stored = int(await redis.get(self.stored_count))
        if stored != self.count:
            raise PartitionsMismatch(self.count, stored)

    async def wake_workers(
        self,
        redis: Redis,
        partition: int,
        jobs: int,
        *,
        scheduled: bool = False,
        on_node: OnNode | None = None,
    ) -> None:
        """After a script queued `jobs` jobs in `partition` (or scheduled some): a token per
        job naming the partition wakes as many idle workers, and one token wakes a worker's
        housekeeping to look at the schedule (see push_wake_tokens)."""
        await self.push_wake_tokens(
            redis, [partition] * min(jobs, WAKE_MAXLEN), scheduled=scheduled, on_node=on_node
        )

    async def push_wake_tokens(
        self,
        redis: Redis,
        tokens: Sequence[int],
        *,
        scheduled: bool = False,
        on_node: OnNode | None = None,
    ) -> None:
        """Pushes `tokens` (a partition per job queued) onto the wake list, and a token onto
        the schedule's when jobs were scheduled: one RPUSH and LTRIM each, however many jobs
        and partitions (the server merges its concurrent submits' tokens). on_node: how
        commands for one cluster node go (default redis_client.on_key_node; the server
        shares round trips, coalesce.RoundTrips.on_node)."""
        tokens = tokens[-WAKE_MAXLEN:]
        commands: list[tuple[str | int, ...]] = []
        if tokens:
            commands += [("RPUSH", self.wake, *tokens), ("LTRIM", self.wake, -WAKE_MAXLEN, -1)]
        if scheduled:
            commands += [("RPUSH", self.schedule_wake, 1),
                         ("LTRIM", self.schedule_wake, -WAKE_MAXLEN, -1)]
        if not commands:
            return
        if is_cluster(redis):
            # The wake lists share the `{jobs}` slot: one write down a connection of its
            # node; after a moved slot or a broken connection, the cluster pipeline below.
            try:
                if on_node is None:
                    await on_key_node(redis, self.wake, commands)
                else:
                    await on_node(self.wake, commands)
                return
            except (TryAgainError, ConnectionError, TimeoutError):
                pass
        async with redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            await pipe.execute()
