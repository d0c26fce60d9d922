"""image_colors with Pillow: the dominant palette of an image.

Computed on a small copy (a JPEG is even decoded at 1/8 scale), so a 24 MP photo costs
about as much as a thumbnail: median cut and k-means find up to CLUSTERS colours, then the
closest two are merged (weighted by their pixels) until `count` are left. Transparent
pixels do not count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from PIL import Image

from mend_core.imaging import open_image

# The copy the palette is computed on fits in SAMPLE x SAMPLE: enough pixels for shares to
# 0.01%, few enough to quantize in milliseconds.
SAMPLE = 200
KMEANS_PASSES = 4
# Median cut first finds this many colours; the closest are then merged down to the count
# asked for. Merging is what keeps two shades of one colour from taking two places while a
# distinct colour with fewer pixels is left out (median cut alone splits the largest box).
CLUSTERS = 48
# Colours closer than this (RGB distance) are one colour even when fewer were asked for:
# JPEG noise around a flat colour is not a palette entry of its own.
ALIKE = 12.0
OPAQUE = 128  # pixels with less alpha are left out


@dataclass(frozen=True)
class Color:
    hex: str
    red: int
    green: int
    blue: int
    percent: float  # of the opaque pixels, 0-100


def dominant_colors(data: bytes, count: int, *, max_pixels: int) -> list[Color]:
    """Up to ``count`` colours (fewer when the image has fewer), the largest share first;
    none for a fully transparent image."""
    img = open_image(data, max_pixels, box=(SAMPLE, SAMPLE))
    img.thumbnail((SAMPLE, SAMPLE), Image.Resampling.BOX)
    pixels = _opaque_pixels(img)
    total = pixels.width * pixels.height
    if total == 0:
        return []
    clusters = _clusters(pixels)
    while len(clusters) > 1:
        # Merge the two closest clusters while there are too many, or they look alike.
        i, j, distance = _closest_pair(clusters)
        if len(clusters) <= count and distance > ALIKE:
            break
        clusters[i] = _merge(clusters[i], clusters[j])
        del clusters[j]
    clusters.sort(key=lambda c: c[1], reverse=True)
    result = []
    for (r, g, b), n in clusters:
        red, green, blue = round(r), round(g), round(b)
        hex_ = f"#{red:02x}{green:02x}{blue:02x}"
        result.append(Color(hex_, red, green, blue, round(n * 100 / total, 2)))
    return result


Cluster = tuple[tuple[float, float, float], int]  # mean colour, pixel count


def _clusters(pixels: Image.Image) -> list[Cluster]:
    """Median cut into up to CLUSTERS colours, refined by k-means."""
    quantized = pixels.quantize(CLUSTERS, method=Image.Quantize.MEDIANCUT, kmeans=KMEANS_PASSES)
    palette = quantized.getpalette() or []
    counts = cast(list[tuple[int, int]], quantized.getcolors(256) or [])
    return [((palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]), n) for n, i in counts]


def _closest_pair(clusters: list[Cluster]) -> tuple[int, int, float]:
    best = (0, 1, math.inf)
    for i, (a, _) in enumerate(clusters):
        for j in range(i + 1, len(clusters)):
            d = math.dist(a, clusters[j][0])
            if d < best[2]:
                best = (i, j, d)
    return best


def _merge(a: Cluster, b: Cluster) -> Cluster:
    (ca, na), (cb, nb) = a, b
    n = na + nb
    return (tuple((x * na + y * nb) / n for x, y in zip(ca, cb, strict=True)), n)  # type: ignore[return-value]


def _opaque_pixels(img: Image.Image) -> Image.Image:
    """The pixels that count, in RGB: all of them, or the opaque ones as one row."""
    if img.mode not in ("LA", "RGBA"):
        return img.convert("RGB")
    rgba = img.convert("RGBA").tobytes()
    kept = b"".join(rgba[i : i + 3] for i in range(0, len(rgba), 4) if rgba[i + 3] >= OPAQUE)
    return Image.frombytes("RGB", (len(kept) // 3, 1), kept)
