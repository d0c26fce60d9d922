"""A bare sharded subscriber for the benchmarks: redis-py's asyncio PubSub, which lacks
SSUBSCRIBE, with it added (the baseline a Mend watcher is compared against, and the
benchmarks' own view of the changes channels)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.client import PubSub


class ShardedPubSub(PubSub):
    # A sharded message is a message: without this, redis-py takes it for a subscribe
    # confirmation and drops it when those are ignored.
    PUBLISH_MESSAGE_TYPES = ("message", "pmessage", "smessage")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shard_channels: set[str] = set()

    @property
    def subscribed(self) -> bool:
        return bool(self.shard_channels) or super().subscribed

    async def ssubscribe(self, channel: str) -> None:
        self.shard_channels.add(channel)
        await self.execute_command("SSUBSCRIBE", channel)
