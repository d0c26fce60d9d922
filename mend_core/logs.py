"""One logging setup for every Mend process: the level and format come from settings
(MEND_LOG_LEVEL, MEND_LOG_FORMAT); in JSON, each line logged while a job is worked on
carries its id."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Protocol

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# The job this context works on. A contextvar, so that under asyncio only the job's own
# task (and the tasks it starts) carries it, not the worker's housekeeping beside it.
current_job_id: ContextVar[str | None] = ContextVar("mend_job_id", default=None)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Everything logged inside is about this job."""
    token = current_job_id.set(job_id)
    try:
        yield
    finally:
        current_job_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and job_id
    while a job is worked on (exception: the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = current_job_id.get()
        if job_id is not None:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class LogSettings(Protocol):
    """What logging needs of the settings (Settings, or the executor child's own)."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...


def configure_logging(settings: LogSettings) -> None:
    """Root logger to stderr, at settings.log_level, as text or JSON lines; replaces any
    handler set before (a library's, or basicConfig's)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
