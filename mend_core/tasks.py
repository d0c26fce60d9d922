"""Stopping asyncio tasks reliably."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[Any], patience: float = 5.0) -> None:
    """Cancels the tasks and waits until they have ended (or `patience` seconds pass).

    Cancels again while a task runs on: on Python 3.11 a cancellation can be lost inside
    asyncio.wait_for (python/cpython#86296), which redis-py uses for socket timeouts, so a
    single cancel() may leave a loop running forever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pending = {t for t in tasks if not t.done()}
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("tasks did not stop within %.1fs: %s", patience, pending)
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.1, remaining))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("task %s ended with %r", task.get_name(), task.exception())
