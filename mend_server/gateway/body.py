"""Reads a request's JSON body: content type, size limit, syntax. Each problem is a clear
4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from mend_server.gateway.errors import GatewayError

# What curl sends with -d and no -H: such bodies are read as JSON when they are JSON.
_FORM = "application/x-www-form-urlencoded"


def _is_json(content_type: str) -> bool:
    media = _media_type(content_type)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose names are unique. Python keeps the last of a repeated name; other
    parsers (a proxy's, a WAF's) may read the first, so a repeat is refused, as
    proto3 JSON parsers do."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"the name {name!r} is given more than once in an object")
        out[name] = value
    return out


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body; `{}` for an empty one. JSON types are read as JSON, and so are a
    missing Content-Type and curl's default for `-d` (application/x-www-form-urlencoded)
    when the body is JSON; any other type is refused with 415."""
    content_type = request.headers.get("content-type")
    curl_default = _media_type(content_type) == _FORM
    if content_type is not None and not curl_default and not _is_json(content_type):
        raise GatewayError(
            415,
            f"unsupported content type {content_type!r}: send 'Content-Type: application/json'",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    too_large = GatewayError(
        413, f"request body is larger than the limit of {limit} bytes", code="PAYLOAD_TOO_LARGE"
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise GatewayError(400, "malformed Content-Length header")
        if int(declared) > limit:
            raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # chunked bodies have no Content-Length to check up front
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise GatewayError(400, "the client closed the connection mid-body") from None
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    if curl_default and raw.lstrip()[:1] not in (b"{", b"["):
        raise GatewayError(
            415,
            "the body is form-encoded: send JSON with 'Content-Type: application/json'",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    try:
        return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_names)
    except UnicodeDecodeError:
        raise GatewayError(400, "malformed JSON body: not UTF-8 text") from None
    except RecursionError:
        raise GatewayError(400, "malformed JSON body: nested too deeply") from None
    except ValueError as exc:
        raise GatewayError(400, f"malformed JSON body: {exc}") from None
