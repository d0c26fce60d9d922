"""image_resize: scale an image into a box (inside, cover or fill) and re-encode it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mend_core.errors import Violation
from mend_core.operations import NO_INPUTS, Operation, OperationLimits, Output, Progress
from mend_core.results import ImageMetadata

FIT_MODES = ("inside", "cover", "fill")
IMAGE_FORMATS = ("jpeg", "png", "webp", "avif")


@dataclass(frozen=True)
class ResizeParams:
    """Field names are those of mend.v1.ImageResizeParameters. 0 and None mean unset."""

    width: int = 0
    height: int = 0
    quality: int | None = None
    fit: str | None = None  # one of FIT_MODES; None: inside
    format: str | None = None  # one of IMAGE_FORMATS; None: from the destination key


def _range(value: int, low: int, high: int) -> str | None:
    return None if low <= value <= high else f"must be between {low} and {high}, got {value}"


def check(p: ResizeParams, limits: OperationLimits) -> list[Violation]:
    problems: list[tuple[str, str | None]] = []
    for name in ("width", "height"):
        value = getattr(p, name)
        if value != 0:
            problems.append((name, _range(value, 1, limits.max_dimension)))
    if p.width == 0 and p.height == 0:
        problems.append(("width", "width or height is required"))
    if p.fit in ("cover", "fill") and (p.width == 0 or p.height == 0):
        problems.append(("fit", f"fit {p.fit!r} needs both width and height"))
    if p.quality is not None:
        problems.append(("quality", _range(p.quality, 1, 100)))
    if p.fit and p.fit not in FIT_MODES:
        expected = ", ".join(FIT_MODES)
        problems.append(("fit", f"unknown fit mode {p.fit!r}; expected one of {expected}"))
    if p.format and p.format not in IMAGE_FORMATS:
        expected = ", ".join(IMAGE_FORMATS)
        problems.append(("format", f"unknown format {p.format!r}; expected {expected}"))
    return [Violation(name, problem) for name, problem in problems if problem]


def run(
    source: bytes, p: ResizeParams, dest_key: str, limits: OperationLimits, progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    from mend_core.imaging import resize_image  # Pillow: loaded by workers only

    image = resize_image(
        source,
        width=p.width,
        height=p.height,
        fit=p.fit or "inside",
        quality=p.quality,
        output_format=p.format,
        dest_key=dest_key,
        max_pixels=limits.max_pixels,
    )
    progress(70, "Image resized")
    return Output(
        image.data, image.content_type, ImageMetadata(image.width, image.height, image.format)
    )


OPERATION = Operation(
    type="image_resize",
    summary="resize an image",
    params=ResizeParams,
    check=check,
    run=run,
)
