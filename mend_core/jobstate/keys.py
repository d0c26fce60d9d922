"""Redis key names. Every key starts with `mend:{jobs}:`: the `{jobs}` hash tag keeps all
keys that one script touches in one Redis Cluster slot (as Asynq does with its queue name),
so the same scripts run unchanged on a cluster. The job the docs call `mend:job:{id}` is
the hash `mend:{jobs}:job:<id>`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "mend:{jobs}:"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}events:{job_id}"

    def batch(self, tenant: str, batch_id: str) -> str:
        return f"{self.prefix}batch:{tenant}:{batch_id}"

    @property
    def webhooks(self) -> str:
        """stream: webhook deliveries to make now"""
        return f"{self.prefix}webhooks"

    @property
    def webhook_retries(self) -> str:
        """zset: failed deliveries waiting for their next attempt, by due time (ms)"""
        return f"{self.prefix}webhooks:retry"

    @property
    def dead_webhooks(self) -> str:
        """stream: deliveries that failed for good, kept for an operator to replay"""
        return f"{self.prefix}webhooks:dead"

    def tenant_stats(self, tenant: str) -> str:
        """The tenant's "<type>:<status>" counters and its "scheduled" count."""
        return f"{self.prefix}tenant:{tenant}:stats"

    @property
    def tenants(self) -> str:
        return f"{self.prefix}tenants"

    def index(self, tenant: str, name: str) -> str:
        """name: "all", "status:<status>" or "type:<type>"."""
        return f"{self.prefix}tenant:{tenant}:{name}"

    @property
    def queue(self) -> str:
        return f"{self.prefix}queue"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}scheduled"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}inflight"

    @property
    def wake(self) -> str:
        return f"{self.prefix}wake"

    @property
    def stats(self) -> str:
        return f"{self.prefix}stats"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    @property
    def changes_channel(self) -> str:
        return f"{self.prefix}changes"
