"""Tenants: who a key belongs to, and which buckets each tenant may touch.

`MEND_API_KEYS` (and `MEND_ADMIN_KEYS`) list `KEY` or `TENANT=KEY` entries;
`MEND_TENANT_BUCKETS` lists `TENANT=BUCKET|BUCKET` grants (`*`: any bucket). A deployment
with one tenant and no grants is open (the dev stack); otherwise a tenant uses only the
buckets granted to it, and a tenant without a grant uses none (fail closed)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mend_core.errors import AccessDenied, Refusal

ANY_BUCKET = "*"
# With auth disabled every caller is this tenant.
ANONYMOUS_TENANT = "anonymous"
# Tenant names become parts of Redis keys (`tenant:<name>:...`): no separators in them.
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ApiKey:
    key: str
    tenant: str
    # Admin keys also see every tenant's queue statistics.
    admin: bool = False


def parse_api_keys(raw: str, *, admin: bool = False) -> tuple[ApiKey, ...]:
    """`key` or `tenant=key`, comma separated. A bare key's tenant is derived from the key
    (a hash prefix), so naming the tenant lets a key be rotated without losing its jobs."""
    keys = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, key = entry.partition("=")
        if not sep:
            key, tenant = entry, "t-" + hashlib.sha256(entry.encode()).hexdigest()[:16]
        if not key or not tenant:
            raise ValueError(f"bad key entry {entry!r}: expected KEY or TENANT=KEY")
        if not _TENANT.fullmatch(tenant):
            raise ValueError(
                f"bad tenant name {tenant!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        keys.append(ApiKey(key=key, tenant=tenant, admin=admin))
    return tuple(keys)


def parse_bucket_grants(raw: str) -> dict[str, frozenset[str]]:
    """`tenant=bucket|bucket,...` -> {tenant: buckets}; `*` grants any bucket."""
    grants: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, buckets = entry.partition("=")
        names = frozenset(b.strip() for b in buckets.split("|") if b.strip())
        if not sep or not _TENANT.fullmatch(tenant.strip()) or not names:
            raise ValueError(
                f"bad MEND_TENANT_BUCKETS entry {entry!r}: expected TENANT=BUCKET[|BUCKET...]"
            )
        tenant = tenant.strip()
        grants[tenant] = grants.get(tenant, frozenset()) | names
    return grants


class BucketGrants:
    """Which buckets each tenant may read and write."""

    def __init__(self, grants: Mapping[str, frozenset[str]], *, open_to_all: bool) -> None:
        self._grants = dict(grants)
        self._open = open_to_all

    @classmethod
    def configure(cls, raw: str, tenants: Iterable[str]) -> BucketGrants:
        """Grants from MEND_TENANT_BUCKETS; with no grants and at most one tenant, every
        bucket is open (a single-tenant deployment has nobody to keep out)."""
        grants = parse_bucket_grants(raw)
        return cls(grants, open_to_all=not grants and len(set(tenants)) <= 1)

    def allows(self, tenant: str, bucket: str) -> bool:
        if self._open:
            return True
        granted = self._grants.get(tenant, frozenset())
        return ANY_BUCKET in granted or bucket in granted

    def check(self, tenant: str, buckets: Iterable[tuple[str, str]]) -> None:
        """Raises AccessDenied naming every (field, bucket) the tenant may not use."""
        refused = [Refusal(f, b) for f, b in buckets if not self.allows(tenant, b)]
        if refused:
            raise AccessDenied(tenant, refused)
