"""Turns a client's draft of a job into a JobSpec, or says exactly which fields are wrong.

Field names in violations are the draft's own (`width`, `source_key`, ...); the API layer
maps them to its request's field paths."""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mend_core.errors import ValidationError, Violation
from mend_core.job import DEFAULT_PRIORITY, WEBHOOK_STYLES, Batch, JobSpec
from mend_core.operations import OPERATIONS, OperationLimits
from mend_core.settings import Settings

# Patterns are applied with fullmatch: `$` would also match before a trailing newline.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# C0 controls, DEL and the C1 controls (U+0080-U+009F, e.g. NEL U+0085).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
MAX_KEY_BYTES = 1024
MAX_BATCH = 100
# How far ahead a job may be scheduled (run_at, delay_seconds), as Cloud Tasks allows.
MAX_DELAY_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Limits:
    max_attempts_default: int
    max_attempts_limit: int
    timeout_default_seconds: int
    timeout_limit_seconds: int
    operation: OperationLimits

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_attempts_default=s.max_attempts_default,
            max_attempts_limit=s.max_attempts_limit,
            timeout_default_seconds=s.timeout_default_seconds,
            timeout_limit_seconds=s.timeout_limit_seconds,
            operation=OperationLimits.from_settings(s),
        )


@dataclass(frozen=True)
class JobDraft:
    """A job as the client sent it. Enum-like fields hold a known name, "" when unset,
    or any other string for a value the API layer did not recognise; `params` holds the
    operation's parameters by name (None for an unset optional one)."""

    type: str
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    priority: int | None = None
    request_id: str = ""
    webhook_url: str = ""
    webhook_style: str = ""
    max_attempts: int | None = None
    timeout_seconds: int | None = None
    batch_id: str = ""
    run_at_ms: int | None = None  # epoch ms
    delay_seconds: float | None = None


def bucket_problem(name: str) -> str | None:
    if not name:
        return "is required"
    if not _BUCKET.fullmatch(name) or ".." in name:
        return (
            "must be a valid S3 bucket name: 3-63 characters of lowercase letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit"
        )
    # Only a name of digits and dots can be an IPv4 address: checking that first spares
    # the usual name a ValueError raised and caught inside ipaddress.
    if not name.strip("0123456789."):
        try:
            ipaddress.IPv4Address(name)
            return "must not be formatted as an IP address"
        except ValueError:
            pass
    if name.startswith("xn--") or name.endswith("-s3alias"):
        return "uses a prefix or suffix reserved by S3"
    return None


def key_problem(key: str) -> str | None:
    """Keys name files under the file backend too: every segment must be a real name."""
    if not key:
        return "is required"
    if _CONTROL.search(key):
        return "must not contain NUL or control characters"
    if len(key.encode(errors="surrogatepass")) > MAX_KEY_BYTES:
        return f"must be at most {MAX_KEY_BYTES} bytes"
    if key.startswith("/"):
        return "must not start with '/'"
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "must not contain '.' or '..' path segments"
    if "" in segments:
        return "must not contain empty path segments ('//' or a trailing '/')"
    return None


def webhook_url_problem(url: str) -> str | None:
    if not url:
        return None
    if _CONTROL.search(url) or any(c.isspace() for c in url):
        return "must not contain spaces or control characters"
    if len(url) > 2048:
        return "must be at most 2048 characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a port number)
    except ValueError as exc:  # "http://[::1", "http://host:99999"
        return f"is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    return None


def webhook_style_problem(style: str) -> str | None:
    if style and style not in WEBHOOK_STYLES:
        return f"unknown webhook style {style!r}; expected one of {', '.join(WEBHOOK_STYLES)}"
    return None


def validate_batch(batch_id: str, fail_fast: bool, webhook_url: str, webhook_style: str) -> Batch:
    bad = [
        Violation(name, problem)
        for name, problem in (
            (
                "batch_id",
                None
                if _REQUEST_ID.fullmatch(batch_id)
                else "must be 1-128 printable ASCII characters without spaces",
            ),
            ("webhook_url", webhook_url_problem(webhook_url)),
            ("webhook_style", webhook_style_problem(webhook_style)),
        )
        if problem
    ]
    if bad:
        raise ValidationError(bad)
    return Batch(
        id=batch_id, fail_fast=fail_fast, webhook_url=webhook_url, webhook_style=webhook_style
    )


def _range(value: int, low: int, high: int) -> str | None:
    return None if low <= value <= high else f"must be between {low} and {high}, got {value}"


def _schedule_problems(draft: JobDraft, now_ms: int) -> list[Violation]:
    """run_at in the past is accepted (the job runs now, as Cloud Tasks does with a past
    schedule_time); both, or a time beyond MAX_DELAY_SECONDS, are refused."""
    days = MAX_DELAY_SECONDS // 86400
    if draft.run_at_ms is not None and draft.delay_seconds is not None:
        return [Violation("run_at", "must not be set together with delay_seconds; give one")]
    if draft.run_at_ms is not None and draft.run_at_ms > now_ms + MAX_DELAY_SECONDS * 1000:
        return [Violation("run_at", f"must be at most {days} days ahead")]
    delay = draft.delay_seconds
    if delay is not None and not (math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS):
        problem = f"must be between 0 and {MAX_DELAY_SECONDS} ({days} days), got {delay}"
        return [Violation("delay_seconds", problem)]
    return []


def validate(draft: JobDraft, limits: Limits, now_ms: int | None = None) -> JobSpec:
    """The JobSpec, or ValidationError naming every bad field: the draft's own names for
    the common fields, the parameter's name for an operation's (`width`)."""
    bad: list[Violation] = []

    def check(name: str, problem: str | None) -> None:
        if problem:
            bad.append(Violation(name, problem))

    op = OPERATIONS.get(draft.type)
    if op is None:
        check("type", "is required" if not draft.type else f"unknown job type {draft.type!r}")
    locations = ["source"]
    if not (op is not None and op.dest_optional and not draft.dest_bucket and not draft.dest_key):
        locations.append("dest")
    for name in locations:
        check(f"{name}_bucket", bucket_problem(getattr(draft, f"{name}_bucket")))
        check(f"{name}_key", key_problem(getattr(draft, f"{name}_key")))
    params = None
    if op is not None:
        params = op.params_from_dict(draft.params)
        bad += op.check(params, limits.operation)
    if draft.priority is not None:
        check("priority", _range(draft.priority, 0, 9))
    if draft.request_id and not _REQUEST_ID.fullmatch(draft.request_id):
        check("request_id", "must be 1-128 printable ASCII characters without spaces")
    check("webhook_url", webhook_url_problem(draft.webhook_url))
    check("webhook_style", webhook_style_problem(draft.webhook_style))
    if draft.max_attempts is not None:
        check("max_attempts", _range(draft.max_attempts, 1, limits.max_attempts_limit))
    if draft.timeout_seconds is not None:
        check("timeout_seconds", _range(draft.timeout_seconds, 1, limits.timeout_limit_seconds))
    bad += _schedule_problems(draft, int(time.time() * 1000) if now_ms is None else now_ms)
    if bad:
        raise ValidationError(bad)

    return JobSpec(
        type=draft.type,
        source_bucket=draft.source_bucket,
        source_key=draft.source_key,
        dest_bucket=draft.dest_bucket,
        dest_key=draft.dest_key,
        params=params,
        priority=DEFAULT_PRIORITY if draft.priority is None else draft.priority,
        max_attempts=draft.max_attempts or limits.max_attempts_default,
        timeout_seconds=draft.timeout_seconds or limits.timeout_default_seconds,
        request_id=draft.request_id,
        webhook_url=draft.webhook_url,
        webhook_style=draft.webhook_style,
        batch_id=draft.batch_id,
        run_at_ms=draft.run_at_ms,
        delay_ms=None if draft.delay_seconds is None else round(draft.delay_seconds * 1000),
    )
