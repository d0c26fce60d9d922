"""image_watermark: composite a text or an image (from storage) onto an image."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mend_core.errors import Violation
from mend_core.operations import (
    NO_INPUTS,
    Input,
    Operation,
    OperationLimits,
    Output,
    Progress,
    in_range,
    one_of,
)
from mend_core.results import ImageMetadata

POSITIONS = (
    "center",
    "north",
    "north_east",
    "east",
    "south_east",
    "south",
    "south_west",
    "west",
    "north_west",
    "tile",
)
MAX_TEXT = 200
MAX_FONT_SIZE = 2000
COLOR = re.compile(r"#[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?")


@dataclass(frozen=True)
class WatermarkParams:
    """Field names are those of mend.v1.ImageWatermarkParameters. 0, "" and None mean
    unset."""

    text: str = ""
    watermark_bucket: str = ""
    watermark_key: str = ""
    position: str | None = None  # one of POSITIONS; None: center
    opacity: float | None = None  # None: 0.5
    scale: float | None = None  # None: an image at its size, a text at font_size
    margin: int = 0
    font_size: int = 0  # 0: 5% of the image's shorter side
    color: str = ""  # "": white


def check(p: WatermarkParams, limits: OperationLimits) -> list[Violation]:
    from mend_core.validation import bucket_problem, key_problem  # it imports the registry

    problems: list[tuple[str, str | None]] = []
    image = bool(p.watermark_bucket or p.watermark_key)
    if p.text and image:
        problems.append(("text", "give text or watermark_bucket/watermark_key, not both"))
    elif not p.text and not image:
        problems.append(("text", "text or watermark_bucket and watermark_key is required"))
    if image:
        problems.append(("watermark_bucket", bucket_problem(p.watermark_bucket)))
        problems.append(("watermark_key", key_problem(p.watermark_key)))
    if len(p.text) > MAX_TEXT:
        problems.append(("text", f"must be at most {MAX_TEXT} characters"))
    problems.append(("position", one_of(p.position, POSITIONS, "position")))
    if p.opacity is not None:
        problems.append(("opacity", in_range(p.opacity, 0, 1)))
    if p.scale is not None and not 0 < p.scale <= 1:
        problems.append(("scale", f"must be above 0 and at most 1, got {p.scale}"))
    problems.append(("margin", in_range(p.margin, 0, limits.max_dimension)))
    if p.font_size:
        problems.append(("font_size", in_range(p.font_size, 1, MAX_FONT_SIZE)))
    if p.color and not COLOR.fullmatch(p.color):
        problems.append(("color", f"must be #RRGGBB or #RRGGBBAA, got {p.color!r}"))
    for name in ("font_size", "color"):
        if getattr(p, name) and image and not p.text:
            problems.append((name, "applies to a text watermark only"))
    return [Violation(name, problem) for name, problem in problems if problem]


def inputs(p: WatermarkParams) -> list[Input]:
    if not p.watermark_key:
        return []
    return [Input("watermark_bucket", p.watermark_bucket, p.watermark_key)]


def run(
    source: bytes,
    p: WatermarkParams,
    dest_key: str,
    limits: OperationLimits,
    progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    from mend_core.imaging_watermark import Mark, watermark  # Pillow: workers only

    mark = Mark(
        text=p.text,
        image=inputs.get("watermark_bucket"),
        position=p.position or "center",
        opacity=0.5 if p.opacity is None else p.opacity,
        scale=p.scale,
        margin=p.margin,
        font_size=p.font_size,
        color=p.color or "#ffffff",
    )
    image = watermark(source, mark, dest_key=dest_key, max_pixels=limits.max_pixels)
    progress(70, "Watermark applied")
    return Output(
        image.data, image.content_type, ImageMetadata(image.width, image.height, image.format)
    )


OPERATION = Operation(
    type="image_watermark",
    summary="put a text or image watermark on an image",
    params=WatermarkParams,
    check=check,
    run=run,
    inputs=inputs,
)
