"""Reads a request's JSON body: content type, size limit, syntax. Each problem is a clear
4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from mend_server.gateway.errors import GatewayError


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body; `{}` for an empty one. A missing Content-Type is taken as JSON
    (curl without -H), any other non-JSON type is refused."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
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
        if not declared.isdigit():
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
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise GatewayError(400, "malformed JSON body: not UTF-8 text") from None
    except RecursionError:
        raise GatewayError(400, "malformed JSON body: nested too deeply") from None
    except ValueError as exc:
        raise GatewayError(400, f"malformed JSON body: {exc}") from None
