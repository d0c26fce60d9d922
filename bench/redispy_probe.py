"""The client CPU per command of the redis-py installed beside this interpreter, as Mend
uses it (its client from mend_core.redis_client.connect: redis.asyncio, hiredis, its
timeouts and pool); run by `python -m bench redispy`, once per redis-py version, in a
virtualenv holding that version and with the repository on PYTHONPATH:

    python bench/redispy_probe.py PORT SECONDS  ->  one JSON object on stdout

It imports nothing else of Mend (mend_core.redis_client needs only redis), nor of bench."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from redis.asyncio import Redis

from mend_core.redis_client import connect

PIPELINE = 100  # commands per pipelined round trip
# About a job hash: twenty short fields.
JOB_HASH = {f"field_{i}": f"value-{i:04d}-{'x' * 12}" for i in range(20)}
# A small script, as Mend's transitions are: the cost measured is redis-py's, not Lua's.
SCRIPT = "return redis.call('HGET', KEYS[1], ARGV[1])"


def commands(sha: str) -> dict[str, Callable[[Any], Any]]:
    """What each scenario sends: called with the client or a pipeline."""
    return {
        "GET": lambda c: c.get("bench:string"),
        "HSET": lambda c: c.hset("bench:written", "field", "value"),
        "HGETALL": lambda c: c.hgetall("bench:hash"),
        "EVALSHA": lambda c: c.evalsha(sha, 1, "bench:hash", "field_3"),
    }


async def measure(round_trip: Callable[[], Awaitable[Any]], per_trip: int, seconds: float) -> dict:
    """Round trips for `seconds`, after a short warm-up: this process's CPU µs and the wall
    µs per command."""
    for _ in range(200):
        await round_trip()
    count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    deadline = wall0 + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            await round_trip()
        count += 50 * per_trip
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"commands": count, "cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}


def clients(url: str) -> dict[str, Redis]:
    """Mend's client, as the server opens it, and redis-py's defaults (with decoded
    replies, as Mend's): a version's defaults may cost what Mend's settings do not."""
    return {"mend": connect(url), "defaults": Redis.from_url(url, decode_responses=True)}


async def run(port: int, seconds: float) -> dict:
    results: dict[str, dict] = {}
    for label, client in clients(f"redis://127.0.0.1:{port}/0").items():
        try:
            await client.hset("bench:hash", mapping=JOB_HASH)
            await client.set("bench:string", "v" * 64)
            sha = await client.script_load(SCRIPT)
            for name, command in commands(sha).items():

                async def single(command: Callable[[Any], Any] = command, c: Redis = client) -> Any:
                    return await command(c)

                async def pipelined(
                    command: Callable[[Any], Any] = command, c: Redis = client
                ) -> Any:
                    pipe = c.pipeline(transaction=False)
                    for _ in range(PIPELINE):
                        command(pipe)
                    return await pipe.execute()

                results[f"{label}: {name}"] = await measure(single, 1, seconds)
                results[f"{label}: {name} pipelined"] = await measure(pipelined, PIPELINE, seconds)
        finally:
            await client.aclose()
    return results


def main() -> int:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    try:
        import hiredis

        parser = f"hiredis {hiredis.__version__}"
    except ImportError:
        parser = "python"
    results = asyncio.run(run(port, seconds))
    print(json.dumps({"redis_py": redis.__version__, "parser": parser, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
