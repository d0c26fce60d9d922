"""Where a webhook may be sent (SSRF guard). A target's host is resolved once; unless
private targets are allowed, every address it resolves to must be public. A submit is
refused when its target is, and a delivery connects to the addresses that were checked,
never resolving the name again: a DNS answer that changes between the check and the
connection (DNS rebinding) cannot send it elsewhere."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mend_core.errors import TargetRefused, UnresolvedHost
from mend_core.validation import webhook_url_problem

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to, as strings, in preference order.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _not_public(address: Address) -> str | None:
    """What kind of non-public address this is, or None for a public one. An IPv4 address
    embedded in IPv6 (mapped, 6to4, NAT64) is judged as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped or address.sixtofour:
            return _not_public(address.ipv4_mapped or address.sixtofour)  # type: ignore[arg-type]
        if address in _NAT64:
            return _not_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{article} {kind.replace('_', '-')} address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Target:
    url: str
    host: str  # as the URL names it
    port: int
    addresses: tuple[Address, ...]  # checked, in the resolver's order


def _host_port(url: str) -> tuple[str, int] | None:
    """The URL's host and port, or None when it has none (validation names that)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


class WebhookTargets:
    def __init__(
        self,
        *,
        allow_private: bool,
        resolve_timeout_seconds: float,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = resolve_timeout_seconds
        self._resolver = resolver

    async def resolve(self, url: str) -> Target:
        """The URL's target with the addresses to connect to, each checked; raises
        TargetRefused (UnresolvedHost when the name did not resolve)."""
        host_port = _host_port(url)
        if host_port is None:
            raise TargetRefused(f"{url!r} names no host")
        host, port = host_port
        try:
            addresses: tuple[Address, ...] = (ipaddress.ip_address(host),)
        except ValueError:
            addresses = await self._lookup(host, port)
        if not self._allow_private:
            for address in addresses:
                if kind := _not_public(address):
                    named = "" if str(address) == host else f"{host} resolves to "
                    raise TargetRefused(
                        f"{named}{address}, {kind}; webhooks go to public addresses only"
                    )
        return Target(url=url, host=host, port=port, addresses=addresses)

    async def _lookup(self, host: str, port: int) -> tuple[Address, ...]:
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._resolver(host, port)
        except TimeoutError:
            raise UnresolvedHost(f"host {host} did not resolve within {self._timeout:g}s") from None
        except OSError as exc:  # socket.gaierror: no such name, no answer
            raise UnresolvedHost(f"host {host} does not resolve: {exc.strerror or exc}") from None
        # getaddrinfo repeats an address once per protocol; an IPv6 scope (%eth0) is dropped.
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in found))
        if not addresses:
            raise UnresolvedHost(f"host {host} does not resolve")
        return addresses

    async def refusal(self, url: str) -> str | None:
        """Why a submitted webhook_url is refused, or None. With private targets allowed
        nothing is looked up at submit; a URL that is not valid is left to validation."""
        if self._allow_private or not url or webhook_url_problem(url):
            return None
        try:
            await self.resolve(url)
        except TargetRefused as exc:
            return str(exc)
        return None
