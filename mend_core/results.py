"""What a finished job produced: the result every operation reports.

Every result has the output's URL, size and the run's duration; image outputs have
`metadata`; an operation may add `details`, keyed by the field of mend.v1.JobResult they
fill (e.g. {"video": {"duration_seconds": 12.5, ...}}), in the proto's field names, so
the server translates them without knowing the operation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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

    def to_json(self) -> str:
        data = asdict(self)
        if not self.details:
            del data["details"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> JobResult:
        data = json.loads(raw)
        metadata = data.get("metadata")
        return cls(
            output_url=data["output_url"],
            file_size=int(data["file_size"]),
            duration=float(data["duration"]),
            metadata=ImageMetadata(**metadata) if metadata else None,
            details=data.get("details") or {},
        )
