"""image_watermark with Pillow: a text or an image composited onto the source.

Text is drawn in the font built into Pillow (Aileron Regular, scalable since Pillow 10.1),
so no system font is needed. The watermark image is decoded as any source is (pixel cap,
upright, sRGB)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from mend_core.errors import PermanentError
from mend_core.imaging import (
    CONTENT_TYPES,
    DEFAULT_QUALITY,
    ResizedImage,
    encode_image,
    format_for_image,
    open_image,
    prepare_for_format,
)

# Tiling pastes the mark once per tile: a tiny mark on a large image would take minutes.
MAX_TILES = 10_000
# The share of the image's shorter side a text is tall when no font_size is given.
RELATIVE_FONT_SIZE = 0.05

# Where each gravity puts the mark, as fractions of the free space (x, y).
_GRAVITY = {
    "center": (0.5, 0.5),
    "north": (0.5, 0.0),
    "north_east": (1.0, 0.0),
    "east": (1.0, 0.5),
    "south_east": (1.0, 1.0),
    "south": (0.5, 1.0),
    "south_west": (0.0, 1.0),
    "west": (0.0, 0.5),
    "north_west": (0.0, 0.0),
}


@dataclass(frozen=True)
class Mark:
    text: str  # a text watermark, or
    image: bytes | None  # an encoded watermark image
    position: str  # a key of _GRAVITY, or "tile"
    opacity: float  # 0-1
    scale: float | None  # mark width / image width
    margin: int
    font_size: int  # 0: RELATIVE_FONT_SIZE
    color: str  # "#RRGGBB" or "#RRGGBBAA"


def watermark(data: bytes, mark: Mark, *, dest_key: str, max_pixels: int) -> ResizedImage:
    img = open_image(data, max_pixels)
    fmt = format_for_image(img, None, dest_key)
    keep_alpha = img.mode in ("LA", "RGBA")
    base = img.convert("RGBA")
    layer = _mark_layer(mark, base.size, max_pixels)
    if mark.opacity < 1:
        alpha = layer.getchannel("A").point(lambda a: round(a * mark.opacity))
        layer.putalpha(alpha)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    for x, y in _places(mark, base.size, layer.size):
        overlay.paste(layer, (x, y))
    out = Image.alpha_composite(base, overlay)
    out = prepare_for_format(out if keep_alpha else out.convert("RGB"), fmt)
    return ResizedImage(
        encode_image(out, fmt, DEFAULT_QUALITY), out.width, out.height, fmt, CONTENT_TYPES[fmt]
    )


def _mark_layer(mark: Mark, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """The watermark, RGBA, at its final size."""
    width, height = size
    if mark.image is None:
        return _text_layer(mark, size)
    layer = open_image(mark.image, max_pixels).convert("RGBA")
    if mark.scale is not None:
        target = max(1, round(width * mark.scale))
    else:  # its own size, shrunk to fit inside the margins
        room_w = max(1, width - 2 * mark.margin)
        room_h = max(1, height - 2 * mark.margin)
        fit = min(1.0, room_w / layer.width, room_h / layer.height)
        target = max(1, round(layer.width * fit))
    if target != layer.width:
        h = max(1, round(layer.height * target / layer.width))
        layer = layer.resize((target, h), Image.Resampling.LANCZOS)
    return layer


def _text_layer(mark: Mark, size: tuple[int, int]) -> Image.Image:
    font_size = mark.font_size or max(8, round(min(size) * RELATIVE_FONT_SIZE))
    font = ImageFont.load_default(size=font_size)
    if mark.scale is not None:  # the font size that makes the text that wide
        left, _, right, _ = font.getbbox(mark.text)
        font_size = max(1, round(font_size * size[0] * mark.scale / max(1, right - left)))
        font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = (int(v) for v in font.getbbox(mark.text))
    layer = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((-left, -top), mark.text, font=font, fill=_rgba(mark.color))
    return layer


def _rgba(color: str) -> tuple[int, int, int, int]:
    hex_ = color.lstrip("#")
    r, g, b = (int(hex_[i : i + 2], 16) for i in (0, 2, 4))
    return r, g, b, int(hex_[6:8], 16) if len(hex_) == 8 else 255


def _places(mark: Mark, size: tuple[int, int], mark_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners to paste the mark at (clipped at the image's edges)."""
    (w, h), (mw, mh), m = size, mark_size, mark.margin
    if mark.position == "tile":
        xs, ys = range(m, w, mw + m), range(m, h, mh + m)
        if len(xs) * len(ys) > MAX_TILES:
            raise PermanentError(
                f"the watermark is too small to tile this image: {len(xs) * len(ys)} tiles,"
                f" at most {MAX_TILES}; give a larger scale, font_size or margin"
            )
        return [(x, y) for y in ys for x in xs]
    fx, fy = _GRAVITY[mark.position]
    return [(round(m + (w - 2 * m - mw) * fx), round(m + (h - 2 * m - mh) * fy))]
