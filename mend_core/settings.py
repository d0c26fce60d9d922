"""Settings: built once from MEND_* environment variables in main() and passed down."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


@dataclass(frozen=True)
class ApiKey:
    key: str
    tenant: str


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """`key` or `tenant=key`, comma separated. A bare key's tenant is derived from the key
    (a hash prefix), so naming the tenant lets a key be rotated without losing its jobs."""
    keys = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, key = entry.partition("=")
        if not sep:
            key, tenant = entry, "t-" + hashlib.sha256(entry.encode()).hexdigest()[:16]
        if not key or not tenant:
            raise ValueError(f"bad MEND_API_KEYS entry {entry!r}: expected KEY or TENANT=KEY")
        keys.append(ApiKey(key=key, tenant=tenant))
    return tuple(keys)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEND_", env_file=os.environ.get("MEND_CONFIG"))

    # Network
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Auth: comma separated `key` or `tenant=key`. Empty refuses to start unless
    # auth_disabled is set explicitly.
    api_keys: Annotated[str, NoDecode] = ""
    auth_disabled: bool = False

    # Storage
    storage: Literal["file", "s3"] = "file"
    storage_root: Path = Path("var/storage")
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    # Limits
    max_dimension: int = Field(default=10_000, ge=1)
    max_pixels: int = Field(default=100_000_000, ge=1)
    max_source_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    max_attempts_default: int = Field(default=3, ge=1)
    max_attempts_limit: int = Field(default=10, ge=1)
    timeout_default_seconds: int = Field(default=300, ge=1)
    timeout_limit_seconds: int = Field(default=3600, ge=1)

    # Workers
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    lease_seconds: float = Field(default=10.0, gt=0)
    heartbeat_seconds: float = Field(default=1.0, gt=0)
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    retry_backoff_base_seconds: float = Field(default=1.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=60.0, ge=0)

    # Retention of finished jobs
    retention_completed_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    retention_failed_seconds: int = Field(default=7 * 24 * 3600, ge=1)

    # Webhooks: X-Mend-Signature is HMAC-SHA256 over "<timestamp>.<body>" with this secret.
    webhook_secret: str = ""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # The waits before each retry of a failed delivery, comma separated seconds: the first
    # attempt goes at once, then one retry per entry (Mend's max_retries 3), so the default
    # spans about 71 s, long enough for a receiver to restart.
    webhook_retry_seconds: Annotated[tuple[float, ...], NoDecode] = (1.0, 10.0, 60.0)
    # Private, loopback and link-local targets are refused unless allowed (SSRF).
    webhook_allow_private: bool = False
    # How long a webhook host name may take to resolve (at submit, and at each attempt).
    webhook_resolve_timeout_seconds: float = Field(default=2.0, gt=0)

    # Server: several processes share the gRPC port (SO_REUSEPORT) to use more than one
    # core; the GIL caps one process at one core.
    server_processes: int = Field(default=1, ge=1)
    grpc_reuse_port: bool = False
    shutdown_grace_seconds_server: float = Field(default=5.0, ge=0)
    watch_heartbeat_seconds: float = Field(default=15.0, gt=0)

    # REST gateway: browser origins allowed by CORS, comma separated ("*" for any);
    # empty sends no CORS headers.
    cors_origins: str = ""

    @field_validator("webhook_retry_seconds", mode="before")
    @classmethod
    def _split_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_retry_seconds")
    @classmethod
    def _non_negative(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(seconds < 0 for seconds in value):
            raise ValueError("retry waits must be >= 0 seconds")
        return value

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_keys)
