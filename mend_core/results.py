"""What a finished job produced: the result every operation reports.

Every result has the output's URL, size and the run's duration; image outputs have
`metadata`; an operation may add `details`, keyed by the field of mend.v1.JobResult they
fill (e.g. {"video": {"duration_seconds": 12.5, ...}}), in the proto's field names, so
the server translates them without knowing the operation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageMetadata:
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class JobResult:
    output_url: str
    file_size: int
    duration: float
    metadata: ImageMetadata | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
