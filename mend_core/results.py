"""What a finished job produced: the result every operation reports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


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
    metadata: ImageMetadata

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> JobResult:
        data = json.loads(raw)
        return cls(
            output_url=data["output_url"],
            file_size=int(data["file_size"]),
            duration=float(data["duration"]),
            metadata=ImageMetadata(**data["metadata"]),
        )
