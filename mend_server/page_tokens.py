"""Page tokens (AIP-158): opaque to clients; to the server, a JSON value in base64url.

One format for every paginated call (ListJobs, PurgeJobs). Decoding is strict — the base64
alphabet only, valid UTF-8 JSON — so a token has one spelling and a mangled one is refused
as a whole; what the value must hold is the caller's business."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class BadPageToken(ValueError):
    """Not a token this server made."""


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode(token: str) -> Any:
    try:
        raw = base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        return json.loads(raw.decode())
    except (ValueError, UnicodeError, binascii.Error):
        raise BadPageToken(token) from None
