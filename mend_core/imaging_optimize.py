"""image_optimize with Pillow: re-encode for the web.

The source is decoded as resize decodes it (pixel cap from the header, upright, sRGB), so
the output carries no metadata and needs no profile. Each format gets its size-saving
options: progressive JPEG with optimized Huffman tables, a palette PNG when the image has
at most 256 colours (checked to be exact, so it stays lossless) at zlib's best level.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from mend_core.errors import PermanentError
from mend_core.imaging import (
    CONTENT_TYPES,
    encode_image,
    format_for_image,
    open_image,
    prepare_for_format,
    writable_format,
)

DEFAULT_QUALITY = 80  # imgproxy's default, a good size/quality balance for the web
# AV1's quality scale is not JPEG's or WebP's: AVIF at 80 is close to lossless (on the
# bench's 12 MP photo 4.8x the bytes of WebP 80, 3.6 dB more PSNR), at 63 it has about
# WebP 80's PSNR. 63 is imgproxy's AVIF default too (libvips maps Q to AV1's quantizer
# as libavif does: the same Q gives the same size there).
FORMAT_DEFAULT_QUALITY = {"avif": 63}
_LOSSLESS = ("png", "webp")


@dataclass(frozen=True)
class Optimized:
    data: bytes
    width: int
    height: int
    format: str
    content_type: str
    kept_source: bool  # re-encoding would have been larger: these are the source's bytes


def optimize(
    data: bytes,
    *,
    fmt: str | None,
    quality: int | None,
    lossless: bool,
    max_size: tuple[int, int],
    dest_key: str,
    max_pixels: int,
) -> Optimized:
    """Re-encode ``data`` as ``fmt`` (else the dest key's extension, else the source's
    format, else PNG with alpha or JPEG), shrunk to fit ``max_size`` (0: no limit)."""
    img = open_image(data, max_pixels)
    out_fmt = format_for_image(img, fmt, dest_key)
    source_fmt = writable_format(img)
    if lossless and out_fmt not in _LOSSLESS:
        raise PermanentError(f"lossless is not available for {out_fmt}; use png or webp")

    size = _fit_within(img.size, max_size)
    resized = size != img.size
    if resized:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    img = prepare_for_format(img, out_fmt)
    encoded = _encode(img, out_fmt, quality or default_quality(out_fmt), lossless)
    # The source's bytes are a valid answer only at the same format and size.
    if out_fmt == source_fmt and not resized and len(encoded) >= len(data):
        return Optimized(data, *size, out_fmt, CONTENT_TYPES[out_fmt], kept_source=True)
    return Optimized(encoded, *size, out_fmt, CONTENT_TYPES[out_fmt], kept_source=False)


def default_quality(fmt: str) -> int:
    """The encoder quality used when the job sets none."""
    return FORMAT_DEFAULT_QUALITY.get(fmt, DEFAULT_QUALITY)


def _fit_within(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``size`` shrunk (never enlarged) to fit ``box``, keeping the aspect ratio."""
    w, h = size
    scale = min([1.0] + [limit / side for limit, side in zip(box, size, strict=True) if limit])
    if scale >= 1:
        return size
    return max(1, round(w * scale)), max(1, round(h * scale))


def _encode(img: Image.Image, fmt: str, quality: int, lossless: bool) -> bytes:
    if fmt == "jpeg":
        return encode_image(img, fmt, quality, optimize=True, progressive=True)
    if fmt == "png":
        return encode_image(_palette_if_exact(img), fmt, quality, optimize=True)
    if fmt == "webp" and lossless:
        return encode_image(img, fmt, quality, lossless=True)
    return encode_image(img, fmt, quality)


def _palette_if_exact(img: Image.Image) -> Image.Image:
    """A palette image with the same pixels, when there are at most 256 colours."""
    if img.mode not in ("RGB", "RGBA") or img.getcolors(256) is None:
        return img
    method = Image.Quantize.FASTOCTREE if img.mode == "RGBA" else Image.Quantize.MEDIANCUT
    palette = img.quantize(256, method=method, dither=Image.Dither.NONE)
    return palette if palette.convert(img.mode).tobytes() == img.tobytes() else img
