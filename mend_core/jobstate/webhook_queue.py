"""WebhookQueue: webhook deliveries in Redis, for the dispatchers that send them and the
operator who replays the ones that failed. Knows nothing of HTTP.

- `webhooks` (stream, read through one consumer group): deliveries to make now. The job
  scripts add one when a job completes or fails and when a batch finishes. An entry
  leaves only once it was delivered, scheduled for a retry or dead-lettered: the stream is
  never trimmed by count.
- `webhooks:retry` (zset by due time): failed deliveries waiting for their next attempt.
  Dispatchers move the due ones back into the stream (one script), so a retry waits in
  Redis rather than in a process: it survives a restart, and no entry stays pending in
  the group while it waits (another process's XAUTOCLAIM would take it and send it twice).
- `webhooks:dead` (stream): deliveries that failed for good, kept until an operator
  replays them (`mend-admin webhooks`); trimmed only by age, as failed jobs expire.

A delivery's fields: `event`, `url`, `style`, `job_id` (or `batch_id` and `tenant`); from
its first attempt on also `delivery_id`, `attempt` and, once rendered, `body` (the
payload, rendered once, so every attempt and a replay send the same bytes). A dead letter
adds `error`, the last attempt's problem.

Each partition has its own three keys (a job's script queues its webhook in the job's
partition): a `WebhookQueue` is one partition's, and `WebhookQueues` shows the operator
every partition's dead letters as one list, their ids `<partition>/<entry id>` (just the
entry id with one partition)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from mend_core.jobstate.keys import Keys
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.scripts import Scripts

GROUP = "webhooks"
# Delivery ids are UUIDs derived from the stream entry that queued the delivery.
_DELIVERY_NAMESPACE = uuid.UUID("5b3c1d0e-8f47-4c59-9a1e-6d2f7e8a9b10")
_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+", re.ASCII)
_DEAD_ID = re.compile(r"(?:([0-9]+)/)?([0-9]+-[0-9]+)", re.ASCII)
_PAGE = 100


@dataclass(frozen=True)
class Delivery:
    entry_id: str
    fields: Mapping[str, str]
    partition: int = 0  # whose stream holds it

    @classmethod
    def from_entry(
        cls, entry_id: str, fields: Mapping[str, str], partition: int = 0
    ) -> Delivery:
        """A stream entry. A first attempt gets its delivery id from the entry, so a
        process that takes over an unfinished attempt sends the same id."""
        if "delivery_id" not in fields:
            subject = "|".join(fields.get(k, "") for k in ("event", "job_id", "tenant", "batch_id"))
            delivery_id = uuid.uuid5(_DELIVERY_NAMESPACE, f"{entry_id}|{subject}")
            fields = {**fields, "delivery_id": str(delivery_id), "attempt": "1"}
        return cls(entry_id, fields, partition)

    @property
    def delivery_id(self) -> str:
        return self.fields["delivery_id"]

    @property
    def attempt(self) -> int:
        return int(self.fields["attempt"])

    @property
    def event(self) -> str:
        return self.fields["event"]

    @property
    def url(self) -> str:
        return self.fields["url"]

    @property
    def body(self) -> str | None:
        return self.fields.get("body")


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the stream entry id, `<partition>/` before it with several partitions
    fields: Mapping[str, str]

    @property
    def failed_at(self) -> dt.datetime:
        entry_id = self.id.rpartition("/")[2]  # `<ms>-<seq>`: buried at <ms>
        return dt.datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, dt.UTC)

    def to_dict(self) -> dict[str, Any]:
        """What an operator sees of it (the payload itself stays out of listings)."""
        subject = {k: self.fields[k] for k in ("job_id", "batch_id", "tenant") if k in self.fields}
        return {
            "id": self.id,
            "failed_at": self.failed_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "delivery_id": self.fields.get("delivery_id", ""),
            "event": self.fields.get("event", ""),
            "url": self.fields.get("url", ""),
            "attempts": int(self.fields.get("attempt", "0")),
            "error": self.fields.get("error", ""),
            **subject,
        }


class WebhookQueue:
    def __init__(
        self, redis: Redis, keys: Keys, *, dead_retention_seconds: int, partition: int = 0
    ) -> None:
        self._redis = redis
        self.partition = partition
        self._keys = keys
        self._stream = keys.webhooks
        self._dead = keys.dead_webhooks
        self._scripts = Scripts(redis, keys)
        self._dead_retention_ms = dead_retention_seconds * 1000

    async def create_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # BUSYGROUP: it exists already
                raise

    async def take(
        self, consumer: str, count: int, *, block_ms: int, claim_idle_ms: int
    ) -> list[Delivery]:
        """Deliveries for `consumer` to make: first those another consumer took and never
        settled (it died), then new ones, waiting up to block_ms for them."""
        _, claimed, _ = await self._redis.xautoclaim(
            self._stream, GROUP, consumer, claim_idle_ms, count=count
        )
        entries = list(claimed)
        if not entries:
            read = await self._redis.xreadgroup(
                GROUP, consumer, {self._stream: ">"}, count=count, block=block_ms
            )
            entries = [entry for _, batch in read for entry in batch]
        return [
            Delivery.from_entry(entry_id, fields, self.partition) for entry_id, fields in entries
        ]

    async def delivered(self, delivery: Delivery) -> None:
        await self._scripts("webhook_delivered", GROUP, delivery.entry_id)

    async def retry_later(self, delivery: Delivery, delay_seconds: float, body: str) -> bool:
        """Schedules the next attempt; False if the entry was settled elsewhere already."""
        fields = {**delivery.fields, "attempt": str(delivery.attempt + 1), "body": body}
        flat = json.dumps([item for pair in fields.items() for item in pair])
        out = await self._scripts(
            "webhook_retry",
            GROUP,
            delivery.entry_id,
            int(delay_seconds * 1000),
            flat,
        )
        return bool(out)

    async def bury(self, delivery: Delivery, error: str, body: str | None) -> str | None:
        """Moves the delivery to the dead letters; their id, or None if the entry was
        settled elsewhere already."""
        fields = {**delivery.fields, "error": error}
        if body is not None:
            fields["body"] = body
        out = await self._scripts(
            "webhook_dead",
            GROUP,
            delivery.entry_id,
            self._dead_retention_ms,
            *(item for pair in fields.items() for item in pair),
        )
        return out or None

    async def promote(self, limit: int) -> tuple[int, float | None]:
        """Moves due retries into the stream: how many, and the seconds until the next
        one is due (None when none waits)."""
        moved, next_ms = await self._scripts("webhook_promote", limit)
        return int(moved), None if int(next_ms) < 0 else int(next_ms) / 1000

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Oldest first."""
        out: list[DeadLetter] = []
        start = "-"
        while limit is None or len(out) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(out))
            entries = await self._redis.xrange(self._dead, min=start, max="+", count=page)
            out.extend(DeadLetter(entry_id, fields) for entry_id, fields in entries)
            if len(entries) < page:
                break
            start = "(" + entries[-1][0]
        return out

    async def replay(self, ids: Iterable[str]) -> list[str]:
        """Sends dead letters again as fresh deliveries (same delivery id, a new attempt
        budget); returns the ids that were dead letters."""
        ids = list(ids)
        bad = [i for i in ids if not _ENTRY_ID.fullmatch(i)]
        if bad:
            raise ValueError(f"not a dead-letter id: {', '.join(bad)} (expected <ms>-<seq>)")
        if not ids:
            return []
        return list(await self._scripts("webhook_replay", *ids))

    async def replay_all(self) -> int:
        """Replays every dead letter there is now (not those that fail again meanwhile)."""
        newest = await self._redis.xrevrange(self._dead, count=1)
        if not newest:
            return 0
        last, total = newest[0][0], 0
        while page := await self._redis.xrange(self._dead, min="-", max=last, count=_PAGE):
            total += len(await self.replay(entry_id for entry_id, _ in page))
        return total


class WebhookQueues:
    """Every partition's webhook queue; dead letters as one list, oldest first."""

    def __init__(self, redis: Redis, parts: Partitions, *, dead_retention_seconds: int) -> None:
        self.queues = [
            WebhookQueue(redis, keys, dead_retention_seconds=dead_retention_seconds, partition=p)
            for p, keys in enumerate(parts.keys)
        ]

    def _id(self, partition: int, entry_id: str) -> str:
        return entry_id if len(self.queues) == 1 else f"{partition}/{entry_id}"

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        letters = [
            (tuple(int(n) for n in letter.id.split("-")), p, letter)
            for p, queue in enumerate(self.queues)
            for letter in await queue.dead_letters(limit)
        ]
        letters.sort(key=lambda entry: (entry[0], entry[1]))
        out = [DeadLetter(self._id(p, letter.id), letter.fields) for _, p, letter in letters]
        return out if limit is None else out[:limit]

    async def replay(self, ids: Iterable[str]) -> list[str]:
        """Like WebhookQueue.replay, for ids as dead_letters shows them."""
        by_queue: dict[int, list[str]] = {}
        bad = []
        for dead_id in ids:
            found = _DEAD_ID.fullmatch(dead_id)
            partition = int(found[1] or 0) if found else -1
            if not found or (found[1] is None) != (len(self.queues) == 1) or not (
                0 <= partition < len(self.queues)
            ):
                bad.append(dead_id)
                continue
            by_queue.setdefault(partition, []).append(found[2])
        if bad:
            form = "<ms>-<seq>" if len(self.queues) == 1 else "<partition>/<ms>-<seq>"
            raise ValueError(f"not a dead-letter id: {', '.join(bad)} (expected {form})")
        replayed = []
        for partition, entries in by_queue.items():
            done = await self.queues[partition].replay(entries)
            replayed += [self._id(partition, entry) for entry in done]
        return replayed

    async def replay_all(self) -> int:
        return sum([await queue.replay_all() for queue in self.queues])
