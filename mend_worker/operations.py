"""The work itself, run inside the executor child: download, transform, upload."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mend_core.imaging import resize_image
from mend_core.settings import Settings
from mend_core.storage import Storage

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class Task:
    """What the child needs to run one job (plain data: it crosses a process boundary)."""

    job_id: str
    type: str
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    params: dict[str, Any]


def run(task: Task, storage: Storage, settings: Settings, progress: Progress) -> dict[str, Any]:
    """Runs a task; returns the result fields, raises mend_core.errors.JobError."""
    started = time.perf_counter()
    data = storage.get(task.source_bucket, task.source_key, settings.max_source_bytes)
    progress(30, "Source downloaded")
    p = task.params
    image = resize_image(
        data,
        width=p.get("width", 0),
        height=p.get("height", 0),
        fit=p.get("fit") or "inside",
        quality=p.get("quality"),
        output_format=p.get("format"),
        dest_key=task.dest_key,
        max_pixels=settings.max_pixels,
    )
    progress(70, "Image resized")
    url = storage.put(task.dest_bucket, task.dest_key, image.data, image.content_type)
    return {
        "output_url": url,
        "file_size": len(image.data),
        "duration": round(time.perf_counter() - started, 4),
        "metadata": {"width": image.width, "height": image.height, "format": image.format},
    }
