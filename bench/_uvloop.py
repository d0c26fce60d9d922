"""`python -m bench._uvloop MODULE [args]`: runs MODULE as __main__ on uvloop's event loop.

Lets a benchmark try uvloop under the server without changing the server's code."""

from __future__ import annotations

import asyncio
import runpy
import sys

import uvloop

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
