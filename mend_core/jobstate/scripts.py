"""Loads the Lua scripts in lua/ (each prefixed with lua/_lib.lua) and calls them by name."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

_DIR = Path(__file__).with_name("lua")


class Scripts:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        lib = (_DIR / "_lib.lua").read_text()
        self._source = {
            path.stem: lib + "\n" + path.read_text() for path in _DIR.glob("[!_]*.lua")
        }
        self._sha = {
            name: hashlib.sha1(source.encode()).hexdigest() for name, source in self._source.items()
        }

    async def __call__(self, name: str, routing_key: str, *args: Any) -> Any:
        # Every script takes the key prefix as ARGV[1] and builds its keys from it;
        # routing_key (a key of the same hash slot) lets cluster clients route the call.
        # EVALSHA directly rather than through redis-py's Script objects, whose call
        # costs a few µs more (an import and a Protocol isinstance check per call).
        call = (self._sha[name], 1, routing_key, self._prefix, *args)
        try:
            return await self._redis.evalsha(*call)  # type: ignore[misc]
        except NoScriptError:  # a restarted or flushed Redis: load the script again
            await self._redis.script_load(self._source[name])  # type: ignore[misc]
            return await self._redis.evalsha(*call)  # type: ignore[misc]
