"""Loads the Lua scripts in lua/ (each prefixed with lua/_lib.lua) and calls them by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_DIR = Path(__file__).with_name("lua")


class Scripts:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._prefix = prefix
        lib = (_DIR / "_lib.lua").read_text()
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(lib + "\n" + path.read_text())
            for path in _DIR.glob("[!_]*.lua")
        }

    async def __call__(self, name: str, routing_key: str, *args: Any) -> Any:
        # Every script takes the key prefix as ARGV[1] and builds its keys from it;
        # routing_key (a key of the same hash slot) lets cluster clients route the call.
        return await self._scripts[name](keys=[routing_key], args=[self._prefix, *args])
