"""Stream tokens: short-lived, signed permission to follow one job of one tenant.

A browser's EventSource cannot send an API key, so a page asks for a token with its key
(CreateStreamToken) and puts the token in the stream's URL. A token is

    base64url(payload) "." base64url(HMAC-SHA256(secret, "mend-stream-token.v1." payload))

where payload is the JSON {"job": id, "tenant": name, "exp": unix seconds}. Nothing is
stored: any server process holding the same secret verifies any other's tokens, so the
secret is a setting (MEND_STREAM_TOKEN_SECRET) or, when that is unset, derived from the
configured API keys (every process of a deployment has the same keys; a tenant that
knows only its own key cannot derive it when there are several keys).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mend_core.errors import InvalidStreamToken
from mend_core.tenancy import ApiKey

_DOMAIN = b"mend-stream-token.v1."
_DERIVE = b"mend stream-token secret from API keys\x00"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class StreamGrant:
    job_id: str
    tenant: str
    expires_at: int  # Unix seconds


def derive_secret(configured: str, keys: Sequence[ApiKey]) -> bytes:
    """The configured secret, or one derived from every API key (sorted, so that the
    order of MEND_API_KEYS does not matter). Changing the keys invalidates the tokens
    made before, which live minutes only."""
    if configured:
        return configured.encode()
    material = b"\x00".join(sorted(k.key.encode() for k in keys))
    return hashlib.sha256(_DERIVE + material).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict, canonical base64url: the decoder alone skips foreign characters and
    ignores a last character's spare bits, so one token would have many spellings."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


class StreamTokens:
    def __init__(
        self, secret: bytes, ttl_seconds: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._clock = clock

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _DOMAIN + payload, hashlib.sha256).digest()

    def issue(self, job_id: str, tenant: str) -> tuple[str, int]:
        """A token for the job and tenant, and its expiry (Unix seconds)."""
        expires_at = int(self._clock()) + self._ttl
        payload = json.dumps(
            {"job": job_id, "tenant": tenant, "exp": expires_at}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}", expires_at

    def verify(self, token: str) -> StreamGrant:
        payload_text, dot, mac_text = token.partition(".")
        try:
            if not dot:
                raise ValueError("no signature")
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise InvalidStreamToken("malformed stream token") from None
        # The signature is checked before the payload is parsed, in constant time.
        if not hmac.compare_digest(self._mac(payload), mac):
            raise InvalidStreamToken("invalid stream token")
        fields = json.loads(payload)
        grant = StreamGrant(fields["job"], fields["tenant"], fields["exp"])
        if self._clock() >= grant.expires_at:
            raise InvalidStreamToken("stream token expired: ask for a new one")
        return grant
