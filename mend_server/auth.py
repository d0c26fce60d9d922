"""API-key authentication: `x-api-key: KEY` or `authorization: Bearer KEY`; and, for
WatchJob only, a stream token (`x-mend-stream-token: TOKEN`, see stream_tokens).

The interceptor resolves the caller (its tenant, whether its key is an admin key, and
with a stream token the one job it opens) and hands it to the servicer through a context
variable; health checks and reflection are open."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from mend_core.errors import InvalidStreamToken, NotAuthenticated
from mend_core.tenancy import ANONYMOUS_TENANT, ApiKey
from mend_server import status
from mend_server.decoding import Undecodable, lenient, refuse
from mend_server.stream_tokens import StreamTokens


@dataclass(frozen=True)
class Caller:
    tenant: str
    admin: bool = False
    # Set when a stream token authenticated the call: the only job it may watch.
    stream_job: str | None = None


current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller")

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
STREAM_TOKEN_METADATA = "x-mend-stream-token"
# The only calls a stream token authenticates; elsewhere the metadata is ignored.
STREAM_TOKEN_METHODS = frozenset({"/mend.v1.JobService/WatchJob"})
_KEY_DENIAL = NotAuthenticated(
    "missing or invalid API key: send 'x-api-key: KEY' or 'authorization: Bearer KEY'"
)
# With auth disabled every caller is the one anonymous tenant, with no admin rights.
_ANONYMOUS = Caller(ANONYMOUS_TENANT)


class Authenticator:
    def __init__(self, keys: Sequence[ApiKey], *, disabled: bool = False) -> None:
        self._disabled = disabled
        # Looking keys up by their digest keeps the lookup from leaking the key's bytes
        # through timing; compare_digest then confirms the match in constant time.
        self._by_digest = {self._digest(k.key): k for k in keys}
        self._callers = {k.key: Caller(k.tenant, k.admin) for k in keys}
        # Keys that passed that check, as presented, so that a client's later calls skip
        # the two SHA-256 digests. Only valid keys get in, so it stays as small as the
        # key list; a str dict lookup compares bytes only on a (randomised) hash match,
        # which a guessed key does not reach.
        self._accepted: dict[str, Caller] = {}

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def caller_for(self, key: str | None) -> Caller | None:
        if self._disabled:
            return _ANONYMOUS
        if not key:
            return None
        if (caller := self._accepted.get(key)) is not None:
            return caller
        digest = self._digest(key)
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(self._digest(found.key), digest):
            return None
        caller = self._accepted[key] = self._callers[found.key]
        return caller

    @staticmethod
    def key_from_headers(get: Callable[[str], str | None]) -> str | None:
        """The presented key from `x-api-key` or `authorization: Bearer` (any case)."""
        if key := get("x-api-key"):
            return key.strip()
        auth = get("authorization") or ""
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, tokens: StreamTokens) -> None:
        self._auth = authenticator
        self._tokens = tokens
        # Wrapped handlers are reused per (method, tenant): wrapping on every call costs
        # more than the rest of the check.
        self._wrapped: dict[tuple[str, Caller | None], grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(OPEN_SERVICES):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        token = metadata.get(STREAM_TOKEN_METADATA)
        if token is not None and details.method in STREAM_TOKEN_METHODS:
            # A presented token alone decides, whatever key comes with it. Not cached:
            # each token names its own job, and streams are long enough to afford it.
            handler = await continuation(details)
            if handler is None:
                return handler
            try:
                grant = self._tokens.verify(token)
            except InvalidStreamToken as exc:
                return _with_caller(handler, None, exc)
            return _with_caller(handler, Caller(grant.tenant, stream_job=grant.job_id))
        caller = self._auth.caller_for(self._auth.key_from_headers(metadata.get))
        wrapped = self._wrapped.get((details.method, caller))
        if wrapped is None:
            handler = await continuation(details)
            if handler is None:
                return handler
            wrapped = self._wrapped[(details.method, caller)] = _with_caller(handler, caller)
        return wrapped


def _with_caller(
    handler: grpc.RpcMethodHandler,
    caller: Caller | None,
    denial: NotAuthenticated = _KEY_DENIAL,
) -> grpc.RpcMethodHandler:
    """Wraps a unary or server-streaming handler so it runs with current_caller set, or
    fails with UNAUTHENTICATED (saying `denial`) before running at all, and with
    INVALID_ARGUMENT for bytes that are not a request message (see decoding.py)."""

    async def deny(context: grpc.aio.ServicerContext) -> None:
        await status.abort(context, denial)

    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if caller is None:
                await deny(context)
            if isinstance(request, Undecodable):
                await refuse(request, context)
            current_caller.set(caller)  # type: ignore[arg-type]
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, lenient(handler.request_deserializer), handler.response_serializer
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if caller is None:
                await deny(context)
            if isinstance(request, Undecodable):
                await refuse(request, context)
            current_caller.set(caller)  # type: ignore[arg-type]
            async for item in inner_stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            stream, lenient(handler.request_deserializer), handler.response_serializer
        )
    return handler
