"""Where to dial a server of this deployment, given the host it binds."""

from __future__ import annotations

# A wildcard bind listens on every interface: it is reached on loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def dial_address(host: str, port: int) -> str:
    """`host:port` to reach a server bound to host:port (IPv6 in brackets)."""
    host = _WILDCARD_HOSTS.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
