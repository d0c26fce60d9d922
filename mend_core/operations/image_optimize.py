"""image_optimize: re-encode an image for the web (smaller, metadata stripped, sRGB)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mend_core.errors import Violation
from mend_core.operations import (
    NO_INPUTS,
    Operation,
    OperationLimits,
    Output,
    Progress,
    in_range,
    one_of,
)
from mend_core.results import ImageMetadata

OPTIMIZE_FORMATS = ("jpeg", "png", "webp", "avif")
LOSSLESS_FORMATS = ("png", "webp")  # Pillow's AVIF encoder is never exactly lossless


@dataclass(frozen=True)
class OptimizeParams:
    """Field names are those of mend.v1.ImageOptimizeParameters. 0 and None mean unset."""

    format: str | None = None  # one of OPTIMIZE_FORMATS; None: dest key's, else source's
    quality: int | None = None
    lossless: bool = False
    max_width: int = 0
    max_height: int = 0


def check(p: OptimizeParams, limits: OperationLimits) -> list[Violation]:
    problems: list[tuple[str, str | None]] = [
        ("format", one_of(p.format, OPTIMIZE_FORMATS, "format"))
    ]
    if p.quality is not None:
        problems.append(("quality", in_range(p.quality, 1, 100)))
    for name in ("max_width", "max_height"):
        if value := getattr(p, name):
            problems.append((name, in_range(value, 1, limits.max_dimension)))
    if p.lossless and p.format and p.format not in LOSSLESS_FORMATS:
        problems.append(("lossless", f"is not available for {p.format}; use png or webp"))
    return [Violation(name, problem) for name, problem in problems if problem]


def run(
    source: bytes, p: OptimizeParams, dest_key: str, limits: OperationLimits, progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    from mend_core.imaging_optimize import optimize  # Pillow: loaded by workers only

    result = optimize(
        source,
        fmt=p.format,
        quality=p.quality,
        lossless=p.lossless,
        max_size=(p.max_width, p.max_height),
        dest_key=dest_key,
        max_pixels=limits.max_pixels,
    )
    progress(70, "Image optimized")
    saving = 0.0 if result.kept_source else (1 - len(result.data) / len(source)) * 100
    return Output(
        result.data,
        result.content_type,
        ImageMetadata(result.width, result.height, result.format),
        details={
            "optimization": {
                "input_bytes": len(source),
                "output_bytes": len(result.data),
                "saving_percent": round(saving, 1),
                "kept_source": result.kept_source,
            }
        },
    )


OPERATION = Operation(
    type="image_optimize",
    summary="re-encode an image for the web",
    params=OptimizeParams,
    check=check,
    run=run,
)
