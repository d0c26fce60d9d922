"""Settings: built once from MEND_* environment variables in main() and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mend_core.redis_client import parse_redis_url
from mend_core.tenancy import ANONYMOUS_TENANT, ApiKey, BucketGrants, parse_api_keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEND_", env_file=os.environ.get("MEND_CONFIG"))

    # Network
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Acknowledged writes (submits, cancels, retries, deletes) answer only once this many
    # replicas hold them (Redis WAIT), or fail with UNAVAILABLE after the timeout: what a
    # failover cannot lose. 0: answer once the master has them (replication is async).
    submit_replicas: int = Field(default=0, ge=0)
    submit_replicas_timeout_seconds: float = Field(default=1.0, gt=0)

    # Auth: comma separated `key` or `tenant=key`. Empty refuses to start unless
    # auth_disabled is set explicitly.
    api_keys: Annotated[str, NoDecode] = ""
    auth_disabled: bool = False
    # Keys (same forms) that also see every tenant's queue statistics.
    admin_keys: Annotated[str, NoDecode] = ""
    # `tenant=bucket|bucket`, comma separated (`*`: any bucket). Empty with one tenant:
    # every bucket; otherwise a tenant uses only the buckets granted to it.
    tenant_buckets: Annotated[str, NoDecode] = ""

    # Logging (mend_core.logs): the lowest level written, and text or JSON lines.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Storage
    storage: Literal["file", "s3"] = "file"
    storage_root: Path = Path("var/storage")
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    # Limits
    max_dimension: int = Field(default=10_000, ge=1)
    max_pixels: int = Field(default=100_000_000, ge=1)
    max_source_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    # The longest video or audio source (and video thumbnail timestamp) a job accepts.
    max_media_seconds: float = Field(default=4 * 3600, gt=0)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    max_attempts_default: int = Field(default=3, ge=1)
    max_attempts_limit: int = Field(default=10, ge=1)
    timeout_default_seconds: int = Field(default=300, ge=1)
    timeout_limit_seconds: int = Field(default=3600, ge=1)
    # Per-tenant quotas (0: none), enforced atomically in Redis at submit: pending jobs, and
    # submitted jobs per second with bursts of up to tenant_submit_burst (0: one second's
    # worth). A batch needs room for all its jobs at once.
    tenant_max_pending: int = Field(default=0, ge=0)
    tenant_submit_rate: float = Field(default=0.0, ge=0)
    tenant_submit_burst: int = Field(default=0, ge=0)

    # Partitions of the keyspace (mend_core/jobstate/partitions.py): fixed when a
    # deployment is created (stored in Redis; a process with another count refuses to start).
    partitions: int = Field(default=12, ge=1, le=256)

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

    # Prometheus endpoints (README "Metrics"): the gRPC server's (all its processes) and
    # one per worker host (all its worker processes); unset: none. The gateway serves
    # /metrics on its HTTP port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # REST gateway: browser origins allowed by CORS, comma separated ("*" for any);
    # empty sends no CORS headers.
    cors_origins: str = ""

    # Stream tokens (CreateStreamToken): signed with this secret, shared by every server
    # process; when empty, one derived from the API keys (mend_server.stream_tokens).
    stream_token_secret: str = ""
    stream_token_ttl_seconds: int = Field(default=300, ge=1)

    # TLS for gRPC (PEM files; checked at start by mend_server.tls). With cert and key
    # the server listens with TLS only; with client_ca too, clients must present a
    # certificate signed by that CA (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # The gateway's channel to the server: TLS when tls_cert or tls_ca is set. tls_ca
    # holds the roots it trusts (default: gRPC's bundled public roots); under mutual TLS
    # it presents gateway_tls_cert/key; tls_server_name is the name it checks the
    # server's certificate against when that is not the host it dials.
    tls_ca: Path | None = None
    gateway_tls_cert: Path | None = None
    gateway_tls_key: Path | None = None
    tls_server_name: str = ""

    @field_validator(
        "tls_cert", "tls_key", "tls_client_ca", "tls_ca", "gateway_tls_cert", "gateway_tls_key",
        mode="before",
    )
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # `MEND_TLS_CERT= make run` turns TLS off rather than naming the current directory.
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _known_redis_url(cls, value: str) -> str:
        parse_redis_url(value)  # a cluster or Sentinel URL too; a bad one stops the start
        return value

    @field_validator("metrics_port", "worker_metrics_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        # `MEND_LOG_LEVEL=debug` and `MEND_LOG_FORMAT=JSON` mean DEBUG and json.
        if isinstance(value, str):
            return value.upper() if info.field_name == "log_level" else value.lower()
        return value

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
        """Every accepted key; an admin key listed among the API keys too is an admin."""
        admins = parse_api_keys(self.admin_keys, admin=True)
        admin_keys = {k.key for k in admins}
        return tuple(k for k in parse_api_keys(self.api_keys) if k.key not in admin_keys) + admins

    def bucket_grants(self) -> BucketGrants:
        tenants = [ANONYMOUS_TENANT] if self.auth_disabled else [k.tenant for k in self.keys]
        return BucketGrants.configure(self.tenant_buckets, tenants)

    @model_validator(mode="after")
    def _check_tenancy(self) -> Settings:
        # Malformed key lists and grants stop the process at start, not at the first call.
        self.keys  # noqa: B018
        self.bucket_grants()
        return self
