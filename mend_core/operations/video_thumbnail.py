"""video_thumbnail: the frame shown at a timestamp, resized as image_resize does (PyAV)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mend_core.errors import PermanentError, Violation
from mend_core.operations import NO_INPUTS, Operation, OperationLimits, Output, Progress
from mend_core.operations.image_resize import FIT_MODES, IMAGE_FORMATS
from mend_core.results import ImageMetadata


@dataclass(frozen=True)
class ThumbnailParams:
    """Field names are those of mend.v1.VideoThumbnailParameters. 0, "" and None mean
    unset."""

    timestamp: str = ""
    width: int = 0
    height: int = 0
    fit: str | None = None  # one of FIT_MODES; None: inside
    format: str | None = None  # one of IMAGE_FORMATS; None: from the destination key
    quality: int | None = None


_SECONDS = re.compile(r"\d{1,9}(?:\.\d{1,9})?")
# ffmpeg's duration syntax: [HH:]MM:SS[.m...], minutes and seconds below 60.
_CLOCK = re.compile(r"(?:(\d{1,5}):)?([0-5]?\d):([0-5]?\d(?:\.\d{1,9})?)")


def parse_timestamp(text: str) -> float:
    """Seconds from "12.5" or "[HH:]MM:SS[.mmm]"; "" is 0. ValueError saying what is
    expected."""
    if text == "":
        return 0.0
    if _SECONDS.fullmatch(text):
        return float(text)
    clock = _CLOCK.fullmatch(text)
    if clock is None:
        raise ValueError(
            f"must be seconds (12.5) or HH:MM:SS.mmm (00:01:02.500), got {text!r}"
        )
    hours, minutes, seconds = clock.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def check(p: ThumbnailParams, limits: OperationLimits) -> list[Violation]:
    problems: list[tuple[str, str | None]] = []
    try:
        at = parse_timestamp(p.timestamp)
        if at > limits.max_media_seconds:
            problems.append(
                ("timestamp", f"{p.timestamp!r} is past the longest video accepted"
                 f" ({limits.max_media_seconds:g} s)")
            )
    except ValueError as e:
        problems.append(("timestamp", str(e)))
    for name in ("width", "height"):
        value = getattr(p, name)
        if not 0 <= value <= limits.max_dimension:
            problems.append((name, f"must be between 1 and {limits.max_dimension}, got {value}"))
    if p.fit in ("cover", "fill") and (p.width == 0 or p.height == 0):
        problems.append(("fit", f"fit {p.fit!r} needs both width and height"))
    if p.fit and p.fit not in FIT_MODES:
        problems.append(("fit", f"unknown fit mode {p.fit!r}; expected one of"
                                f" {', '.join(FIT_MODES)}"))
    if p.format and p.format not in IMAGE_FORMATS:
        problems.append(("format", f"unknown format {p.format!r}; expected"
                                   f" {', '.join(IMAGE_FORMATS)}"))
    if p.quality is not None and not 1 <= p.quality <= 100:
        problems.append(("quality", f"must be between 1 and 100, got {p.quality}"))
    return [Violation(name, problem) for name, problem in problems if problem]


def _frame_at(container: Any, stream: Any, at: float, duration: float | None) -> Any:
    """The frame on screen at `at` seconds from the start: seek to the keyframe at or
    before it, then decode forward to the last frame that starts at or before it."""
    from mend_core import media

    tb: Fraction = stream.time_base
    start = stream.start_time or 0
    target = start + int(Fraction(at).limit_denominator(10**9) / tb)
    if target > start:
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except media.DECODE_ERRORS:
            container.seek(start, stream=stream, backward=True)  # decode from the start
    best = None
    for frame in container.decode(stream):
        if frame.pts is not None and frame.pts > target and best is not None:
            return best
        best = frame
        if frame.pts == target:
            return best
    # The stream ended before a later frame: the last one holds until its end.
    if best is None:
        raise media.UnsupportedMedia("not a readable video: no frame could be decoded")
    rate = stream.average_rate or stream.guessed_rate or 25
    ends = float((best.pts - start) * tb + 1 / Fraction(rate)) if best.pts is not None else at
    if at >= ends + 0.001:
        # Headers promised more than the stream holds (truncated), or said nothing.
        raise PermanentError(
            f"timestamp {at:g} s is past the end of the video ({ends:.3f} s decodable"
            + (f" of {duration:.3f} s" if duration else "") + ")"
        )
    return best


def run(
    source: bytes, p: ThumbnailParams, dest_key: str, limits: OperationLimits, progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    from mend_core import media
    from mend_core.imaging import resize_frame  # Pillow and PyAV: loaded by workers only

    at = parse_timestamp(p.timestamp)
    with media.open_source(source, "video") as container:
        stream = media.first_stream(container, "video")
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if width * height > limits.max_pixels:
            raise PermanentError(
                f"video frame too large: {width}x{height} exceeds {limits.max_pixels} pixels"
            )
        duration = media.duration_seconds(container, stream)
        media.check_duration(duration, limits.max_media_seconds, "video")
        if duration is not None and at >= duration:
            raise PermanentError(
                f"timestamp {p.timestamp} ({at:g} s) is past the end of the video"
                f" ({duration:.3f} s)"
            )
        stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads, as the CLI uses
        try:
            frame = _frame_at(container, stream, at, duration)
            image = frame.to_image()
        except media.DECODE_ERRORS as e:
            raise media.corrupt("video", e) from e
        codec = media.codec_name(stream)
    progress(70, "Frame decoded")
    thumb = resize_frame(
        image,
        width=p.width,
        height=p.height,
        fit=p.fit or "inside",
        quality=p.quality,
        output_format=p.format,
        dest_key=dest_key,
        max_pixels=limits.max_pixels,
    )
    video = {
        "duration_seconds": round(duration, 3) if duration is not None else 0.0,
        "codec": codec,
        "width": width,
        "height": height,
    }
    return Output(
        thumb.data,
        thumb.content_type,
        ImageMetadata(thumb.width, thumb.height, thumb.format),
        details={"video": video},
    )


OPERATION = Operation(
    type="video_thumbnail",
    summary="the frame of a video at a timestamp, as an image",
    params=ThumbnailParams,
    check=check,
    run=run,
)
