"""image_colors: an image's dominant colours, in the result (and optionally as JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from mend_core.errors import Violation
from mend_core.operations import NO_INPUTS, Operation, OperationLimits, Output, Progress, in_range

MAX_COLORS = 16
DEFAULT_COLORS = 5


@dataclass(frozen=True)
class ColorsParams:
    """Field names are those of mend.v1.ImageColorsParameters. 0 means unset."""

    count: int = 0  # 0: DEFAULT_COLORS


def check(p: ColorsParams, limits: OperationLimits) -> list[Violation]:
    problem = in_range(p.count, 1, MAX_COLORS) if p.count else None
    return [Violation("count", problem)] if problem else []


def run(
    source: bytes, p: ColorsParams, dest_key: str, limits: OperationLimits, progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    from mend_core.imaging_colors import dominant_colors  # Pillow: workers only

    colors = [
        {"hex": c.hex, "red": c.red, "green": c.green, "blue": c.blue, "percent": c.percent}
        for c in dominant_colors(source, p.count or DEFAULT_COLORS, max_pixels=limits.max_pixels)
    ]
    progress(70, "Colours found")
    # Without a destination nothing is stored: the palette is the job's result.
    data = json.dumps({"colors": colors}, indent=2).encode() + b"\n" if dest_key else None
    return Output(data, "application/json", details={"colors": colors})


OPERATION = Operation(
    type="image_colors",
    summary="find an image's dominant colours",
    params=ColorsParams,
    check=check,
    run=run,
    dest_optional=True,
)
