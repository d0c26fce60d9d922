"""Redis key names of one partition: the one table of them. `Keys` builds them for Python,
and `lua_prelude()` declares the same names for the Lua scripts, so a key's name is written
only here.

Every key of a partition starts with its prefix `mend:{<tag>}:` (partitions.py chooses the
tags): the hash tag keeps all keys that one script touches in one Redis Cluster slot (as
Asynq does with its queue name), so the same scripts run unchanged on a cluster. The job the
docs call `mend:job:{id}` is the hash `mend:{<tag>}:job:<id>` of the job's partition. Keys
outside the partitions (workers, wake lists) are in partitions.GLOBAL_KEYS."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property

# Every key after the prefix: name -> (template, Redis type, what it holds). A fixed key
# becomes a Lua constant (`queue` -> QUEUE), a templated one a Lua function (`job` ->
# job_key(id)) taking the template's fields in order. README's "Redis keys" lists them.
KEYS: dict[str, tuple[str, str, str]] = {
    "job": ("job:{id}", "hash", "the job"),
    "events": (
        "events:{id}",
        "list",
        "the job's last 512 versions, each `[<version>, name, value, ...]` (JSON)",
    ),
    "queue": ("queue:{tenant}", "zset", "a tenant's queued job ids by priority, then arrival"),
    "turns": ("turns", "zset", "claim order: `<round>:<turn>:<tenant>` per queued job, by turn"),
    "fair": ("fair", "hash", "tenant with queued jobs -> `<round> <turn of its first job>`"),
    "clock": ("clock", "string", "the turn of the job claimed last"),
    "rounds": ("rounds", "string", "the round a tenant joining the turns got last"),
    "scheduled": ("scheduled", "zset", "pending jobs waiting for a retry or run_at, by due ms"),
    "inflight": ("inflight", "zset", "processing job ids by lease deadline (ms)"),
    "seq": ("seq", "string", "the partition's arrival sequence (1/128 ms since 2025, or more)"),
    "request": ("request:{tenant}:{request_id}", "string", "idempotency: job id, fingerprint"),
    "index": ("tenant:{tenant}:{name}", "zset", "ListJobs: all, status:<s>, type:<t>, by seq"),
    "tenant_stats": (
        "tenant:{tenant}:stats",
        "hash",
        "`<type>:<status>` counts, `scheduled`, `next_turn`",
    ),
    "submit_rate": ("tenant:{tenant}:rate", "hash", "submit rate bucket: `tokens`, `at` (ms)"),
    "tenants": ("tenants", "set", "every tenant that submitted a job to the partition"),
    "stats": ("stats", "hash", "`<type>:<status>` counts, `<type>:avg_ms` (job slot time)"),
    "barrier": (
        "replication:barrier",
        "string",
        "incremented before each WAIT (MEND_SUBMIT_REPLICAS), so it covers what is answered",
    ),
    "throughput": (
        "throughput:{minute}",
        "hash",
        "jobs finished in a minute (Unix minute): `<status>`, `<status>:<tenant>`; 20 min TTL",
    ),
    "batch": ("batch:{tenant}:{batch_id}", "hash", "a batch: total, remaining, counts"),
    "batch_jobs": ("batch:{tenant}:{batch_id}:jobs", "zset", "the batch's job ids, by seq"),
    "changes": (
        "changes", "sharded channel", "`<id>:<version>` after each change but the first (SPUBLISH)"
    ),
    "webhooks": ("webhooks", "stream", "webhook deliveries to make now"),
    "webhook_retries": ("webhooks:retry", "zset", "deliveries waiting to retry, by due ms"),
    "dead_webhooks": ("webhooks:dead", "stream", "deliveries that failed for good"),
}


def _parts(template: str) -> list[tuple[str, str | None]]:
    return [(literal, field) for literal, field, _, _ in string.Formatter().parse(template)]


@dataclass(frozen=True)
class Keys:
    prefix: str = "mend:{jobs}:"

    def _key(self, key: str, /, **fields: str) -> str:
        return self.prefix + KEYS[key][0].format(**fields)

    def job(self, job_id: str) -> str:
        return self._key("job", id=job_id)

    def events(self, job_id: str) -> str:
        return self._key("events", id=job_id)

    def batch(self, tenant: str, batch_id: str) -> str:
        return self._key("batch", tenant=tenant, batch_id=batch_id)

    def batch_jobs(self, tenant: str, batch_id: str) -> str:
        return self._key("batch_jobs", tenant=tenant, batch_id=batch_id)

    def request(self, tenant: str, request_id: str) -> str:
        return self._key("request", tenant=tenant, request_id=request_id)

    def tenant_stats(self, tenant: str) -> str:
        return self._key("tenant_stats", tenant=tenant)

    def throughput(self, minute: int) -> str:
        """minute: Unix time in whole minutes."""
        return self._key("throughput", minute=str(minute))

    def index(self, tenant: str, name: str) -> str:
        """name: "all", "status:<status>" or "type:<type>"."""
        return self._key("index", tenant=tenant, name=name)

    @cached_property
    def tenants(self) -> str:
        return self._key("tenants")

    def queue(self, tenant: str) -> str:
        return self._key("queue", tenant=tenant)

    def submit_rate(self, tenant: str) -> str:
        return self._key("submit_rate", tenant=tenant)

    @cached_property
    def turns(self) -> str:
        return self._key("turns")

    @cached_property
    def fair(self) -> str:
        return self._key("fair")

    @cached_property
    def clock(self) -> str:
        return self._key("clock")

    @cached_property
    def scheduled(self) -> str:
        return self._key("scheduled")

    @cached_property
    def inflight(self) -> str:
        return self._key("inflight")

    @cached_property
    def seq(self) -> str:
        return self._key("seq")

    @cached_property
    def stats(self) -> str:
        return self._key("stats")

    @cached_property
    def barrier(self) -> str:
        return self._key("barrier")

    @cached_property
    def changes_channel(self) -> str:
        return self._key("changes")

    @cached_property
    def webhooks(self) -> str:
        return self._key("webhooks")

    @cached_property
    def webhook_retries(self) -> str:
        return self._key("webhook_retries")

    @cached_property
    def dead_webhooks(self) -> str:
        return self._key("dead_webhooks")


def lua_prelude() -> str:
    """The KEYS table as Lua, for the head of every script. The prefix is the script's
    ARGV[1] (its hash tag puts every key in one Redis Cluster slot); KEYS[1] is always a
    key of that slot, so cluster clients route the call correctly."""
    lines = ["-- Generated from mend_core/jobstate/keys.py (KEYS).", "local PREFIX = ARGV[1]"]
    for name, (template, kind, holds) in KEYS.items():
        parts = _parts(template)
        assert all("'" not in lit and "\\" not in lit for lit, _ in parts), template
        params = [field for _, field in parts if field]
        pieces = ["PREFIX"]
        for literal, field in parts:
            pieces += [f"'{literal}'"] if literal else []
            pieces += [field] if field else []
        expr = " .. ".join(pieces)
        comment = f"-- {kind}: {holds}"
        if params:
            args = ", ".join(params)
            lines.append(f"local function {name}_key({args}) return {expr} end  {comment}")
        else:
            lines.append(f"local {name.upper()} = {expr}  {comment}")
    return "\n".join(lines) + "\n"
