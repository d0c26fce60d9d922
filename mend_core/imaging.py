"""image_resize with Pillow: decode safely, resize, re-encode without metadata.

Safety before speed: the pixel count is checked against ``max_pixels`` from the header,
before any pixel is decoded, and only a few well-known input formats are decoded at all.
Speed: JPEG sources are decoded at a reduced DCT scale (``draft``), resampling reduces by
integer factors first (``reducing_gap``), and EXIF rotation and colour conversions
(including ICC profile transforms) are applied to the small output rather than to the
full-size source.
"""

from __future__ import annotations

import io
import math
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TypeVar, cast

from PIL import ExifTags, Image, ImageCms, PngImagePlugin, UnidentifiedImageError
from pillow_heif import register_heif_opener

from mend_core.errors import ImageTooLarge, PermanentError, UnsupportedImage
from mend_core.operations.image_resize import FIT_MODES

# HEIC/HEIF through libheif (pillow-heif); AVIF is Pillow's own (libavif, in its wheels).
register_heif_opener()

__all__ = [
    "CONTENT_TYPES",
    "ICC_EMBED_MAX_BYTES",
    "PNG_MAX_CHUNK_BYTES",
    "ResizedImage",
    "encode_image",
    "format_for_image",
    "open_image",
    "output_format_for",
    "prepare_for_format",
    "resize_image",
    "writable_format",
]

CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
}
DEFAULT_QUALITY = 85

# A colour profile up to this size is embedded in the output as it came: every common
# matrix profile fits (sRGB IEC61966-2.1 is 3144 bytes, Display P3 and Adobe RGB about
# 550). A larger one (LUT-based, or carrying private tags) would outweigh a thumbnail, so
# the pixels are converted to sRGB through it and the output is untagged, which viewers
# take as sRGB. (imgproxy does that to every profile by default; keeping the small ones
# keeps wide-gamut colour, such as a Display P3 photo's, for a few hundred bytes.)
ICC_EMBED_MAX_BYTES = 4096
# How far Pillow may inflate one zlib-compressed PNG chunk: iCCP (a colour profile) and
# zTXt/iTXt (text, still capped at 64 MiB in total by Pillow). Pillow's default of 1 MiB
# rejects valid files with large profiles; 16 MiB is about the most a JPEG can carry
# (255 APP2 segments), so a profile any format can hold is decoded.
PNG_MAX_CHUNK_BYTES = 16 * 1024 * 1024

# Decoders Mend accepts. Pillow knows dozens more (EPS even runs Ghostscript); each one is
# attack surface, so anything else is rejected as unsupported. (Multi-picture JPEGs open
# through the JPEG entry, as format "MPO".)
_INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
_SOURCE_TO_OUTPUT = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "AVIF": "avif"}
_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp", ".avif": "avif"}
_FORMAT_ALIASES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp", "avif": "avif"}
# libavif's encoder speed (0 slowest/smallest - 10): 6 is Pillow's default, about as fast
# as libwebp's method 4 for a few percent more bytes than the slowest setting.
AVIF_SPEED = 6

# The same table as ImageOps.exif_transpose; applied by hand so it can run on the small
# output (exif_transpose would load and copy the full-size source).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_N = TypeVar("_N", int, float)

# With >= 3 the two-step resize is visually indistinguishable from a full Lanczos pass
# (Pillow's docs) while the integer reduce step does most of the work cheaply.
_REDUCING_GAP = 3.0


# What Pillow's decoders raise on corrupt or truncated input.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)

# Pillow's limits and the warnings filters are process-wide; see _pillow_limits.
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResizedImage:
    data: bytes
    width: int
    height: int
    format: str  # "jpeg" | "png" | "webp" | "avif"
    content_type: str


def output_format_for(
    output_format: str | None, dest_key: str, source_format: str | None = None
) -> str:
    """The output format: explicit, else from dest_key's extension, else the source's
    format when Mend can write it, else jpeg."""
    if output_format:
        fmt = _FORMAT_ALIASES.get(output_format.lower())
        if fmt is None:
            raise ValueError(f"unsupported output format {output_format!r}")
        return fmt
    dot = dest_key.rfind(".")
    if dot > dest_key.rfind("/"):
        ext_fmt = _EXTENSIONS.get(dest_key[dot:].lower())
        if ext_fmt:
            return ext_fmt
    return _SOURCE_TO_OUTPUT.get(source_format or "", "jpeg")


def resize_image(
    data: bytes,
    *,
    width: int,
    height: int,
    fit: str = "inside",
    quality: int | None = None,
    output_format: str | None = None,
    dest_key: str = "",
    max_pixels: int,
) -> ResizedImage:
    """Resize an encoded image and re-encode it.

    ``width``/``height`` of 0 mean "not given": with one side given the other follows the
    aspect ratio (whatever ``fit`` is). With both given, ``fit`` decides:

    - ``inside``: the largest size that fits in the box, keeping the aspect ratio. Images
      smaller than the box ARE upscaled: the caller asked for that size.
    - ``cover``: scale to cover the box, then centre-crop to exactly width x height.
    - ``fill``: exactly width x height, ignoring the aspect ratio.

    EXIF orientation is applied; EXIF, XMP and other metadata are dropped; the ICC
    profile is kept when it still matches the output's colours (CMYK is converted to sRGB
    through its profile). ``quality`` (1-100, default 85) applies to jpeg and webp.
    Animated GIF/WebP sources give their first frame.

    Raises ValueError for bad arguments (callers validate earlier), ImageTooLarge when
    the source (from its header) or the requested output exceeds ``max_pixels``, and
    UnsupportedImage for data that is not a complete image in a supported format.
    """
    if width < 0 or height < 0 or (width == 0 and height == 0):
        raise ValueError("width and height must be >= 0 and not both 0")
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, not {fit!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError("quality must be between 1 and 100")
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    if output_format is not None:
        output_format_for(output_format, dest_key)  # reject bad names before decoding

    img, orientation, orig_size, region = _decode(data, width, height, fit, max_pixels)
    fmt = output_format_for(output_format, dest_key, img.format)
    icc: bytes | None = img.info.get("icc_profile") or None

    # Geometry in the source's un-rotated pixel grid; the rotation comes last, on the
    # small result.
    out_w, out_h, box = _geometry(orig_size, region, orientation, width, height, fit)
    if out_w * out_h > max_pixels:
        raise ImageTooLarge(*_upright((out_w, out_h), orientation), max_pixels)
    img = _prepare_for_resampling(img)
    if (out_w, out_h) != img.size or box != (0, 0, *img.size):
        img = img.resize(
            (out_w, out_h), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP
        )
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    img, icc = _to_output_mode(img, fmt, icc)

    return ResizedImage(
        data=_encode(img, fmt, quality or DEFAULT_QUALITY, icc),
        width=img.width,
        height=img.height,
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
    )


# ------------------------------------------------------------------------------ decode


@contextmanager
def _pillow_limits(max_pixels: int | None) -> Iterator[None]:
    """Run with Pillow's decompression-bomb limit set to ``max_pixels`` (its warning
    raised as an error instead of printed) and its PNG chunk limit at
    PNG_MAX_CHUNK_BYTES.

    All are process-wide, hence the lock; Mend runs one job per worker process, so the
    lock is uncontended there.
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK
        Image.MAX_IMAGE_PIXELS = max_pixels
        PngImagePlugin.MAX_TEXT_CHUNK = PNG_MAX_CHUNK_BYTES
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK = saved


def _corrupt(stage: str, e: Exception) -> UnsupportedImage:
    if "MAX_TEXT_CHUNK" in str(e):
        # Pillow's own words name its variable: say which limit that is, in Mend's terms.
        return UnsupportedImage(
            "not a supported image: a compressed PNG chunk (colour profile or text)"
            f" inflates past the {PNG_MAX_CHUNK_BYTES // 2**20} MiB limit"
        )
    return UnsupportedImage(f"not a supported image: {stage} ({e})")


def _decode(
    data: bytes, width: int, height: int, fit: str, max_pixels: int
) -> tuple[Image.Image, int, tuple[int, int], tuple[float, float]]:
    """Open, check the header's size, and decode (at a reduced scale for JPEG).

    Returns the loaded image, its EXIF orientation (1-8), the source's size from the
    header, and the extent (width, height) of the whole source within the decoded image:
    the decoded size, or a fraction like 1000.25 x 750.5 after DCT scaling.
    """
    try:
        # Pillow's own check would stop a bomb inside Image.open, before the dimensions
        # are known; ours below reports them, so Pillow's is off while reading the header.
        with _pillow_limits(None):
            img = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImage(
            "not a supported image: unrecognised data"
            " (expected JPEG, PNG, WebP, AVIF, HEIC/HEIF, GIF, BMP or TIFF)"
        ) from None
    except _DECODE_ERRORS as e:
        raise _corrupt("corrupt header", e) from e

    src_w, src_h = img.size
    if src_w * src_h > max_pixels:
        raise ImageTooLarge(src_w, src_h, max_pixels)

    region: tuple[float, float] = (src_w, src_h)
    orientation = 1
    try:
        if img.format in ("JPEG", "MPO"):
            # JPEG keeps EXIF in a header segment: the orientation is known before decoding,
            # which the draft size needs.
            orientation = _orientation(img)
            target = None
            if width or height:  # else the full size is wanted
                target = _decode_target((src_w, src_h), orientation, width, height, fit)
            if target is not None:
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below `target`.
                drafted = img.draft(None, target)
                if drafted is not None:
                    region = (drafted[1][2], drafted[1][3])
        # Pillow's per-tile/per-frame checks still guard the decode, at our limit.
        with _pillow_limits(max_pixels):
            img.load()
        if img.format not in ("JPEG", "MPO"):
            # PNG may keep EXIF after the pixel data: read it once decoded.
            orientation = _orientation(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(src_w, src_h, max_pixels) from None
    except _DECODE_ERRORS as e:
        raise _corrupt("truncated or corrupt", e) from e
    return img, orientation, (src_w, src_h), region


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # Corrupt EXIF must not fail an otherwise decodable image: treat as upright.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(pair: tuple[_N, _N], orientation: int) -> tuple[_N, _N]:
    """A raw-grid (x, y) pair as seen after applying the EXIF orientation (and back)."""
    return (pair[1], pair[0]) if orientation in _SWAPS_AXES else pair


def _scaled_size(
    src: tuple[int, int], width: int, height: int, fit: str
) -> tuple[float, float, int, int]:
    """(scaled_w, scaled_h, out_w, out_h) for an upright source of size ``src``.

    scaled_* is the size the whole source is scaled to; it differs from out_* only for
    cover, which then crops.
    """
    sw, sh = src
    if width and height:
        if fit == "fill":
            return width, height, width, height
        if fit == "cover":
            scale = max(width / sw, height / sh)
            return sw * scale, sh * scale, width, height
        scale = min(width / sw, height / sh)
    else:
        scale = width / sw if width else height / sh
    out_w = max(1, round(sw * scale))
    out_h = max(1, round(sh * scale))
    return out_w, out_h, out_w, out_h


def _decode_target(
    raw: tuple[int, int], orientation: int, width: int, height: int, fit: str
) -> tuple[int, int] | None:
    """The smallest decode size (raw grid) that still resamples well, or None when the
    output is more than half the source on some axis (no DCT scaling applies)."""
    scaled_w, scaled_h, _, _ = _scaled_size(_upright(raw, orientation), width, height, fit)
    need = _upright((math.ceil(scaled_w), math.ceil(scaled_h)), orientation)
    if need[0] * 2 > raw[0] or need[1] * 2 > raw[1]:
        return None
    return need


def _geometry(
    src: tuple[int, int],
    region: tuple[float, float],
    orientation: int,
    width: int,
    height: int,
    fit: str,
) -> tuple[int, int, tuple[float, float, float, float]]:
    """Output size and the box of the decoded image to resample into it, both in the raw
    (un-rotated) grid.

    Sizes come from the header's ``src`` so DCT scaling never changes the output by a
    rounding pixel; the box is in decoded pixels, where the whole source spans ``region``.
    """
    scaled_w, scaled_h, out_w, out_h = _scaled_size(_upright(src, orientation), width, height, fit)
    # Fraction of the upright source that is kept on each axis (< 1 only for cover).
    keep_x, keep_y = out_w / scaled_w, out_h / scaled_h
    # A centred box stays centred under every flip and rotation: only the axes swap.
    keep_x, keep_y = _upright((keep_x, keep_y), orientation)
    crop_w, crop_h = region[0] * keep_x, region[1] * keep_y
    left, top = (region[0] - crop_w) / 2, (region[1] - crop_h) / 2
    out_w, out_h = _upright((out_w, out_h), orientation)
    return out_w, out_h, (left, top, left + crop_w, top + crop_h)


# --------------------------------------------------------------------- modes and colour


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _prepare_for_resampling(img: Image.Image) -> Image.Image:
    """Modes Pillow resamples badly or not at all become L, LA, RGB or RGBA."""
    mode = img.mode
    if mode in ("P", "PA"):
        # Resizing a palette image would fall back to nearest-neighbour.
        return img.convert("RGBA" if _has_alpha(img) else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16"):
        # 16-bit grey: convert("L") would clip, so scale 0..65535 down to 0..255 first.
        return _grey_to_8_bit(img.convert("I"), 0, 65535)
    if mode == "I":
        return _grey_to_8_bit(img, *_int_grey_range(img))
    if mode == "F":
        return img.convert("L")
    if mode in ("L", "RGB") and "transparency" in img.info:
        # PNG tRNS colour key: make it a real alpha channel.
        return img.convert("LA" if mode == "L" else "RGBA")
    return img


def _int_grey_range(img: Image.Image) -> tuple[int, int]:
    """The range a 32-bit grey image's values come from, judged by the values: TIFF
    stores 8- and 16-bit data widened to 32 bits, and the mode does not say which."""
    lo, hi = cast(tuple[int, int], img.getextrema())
    if lo >= 0 and hi <= 255:
        return 0, 255  # 8-bit data, as it is
    if lo >= 0 and hi <= 65535:
        return 0, 65535  # 16-bit data, scaled as I;16 is
    return lo, max(hi, lo + 1)  # anything else: stretched from its darkest to its lightest


def _grey_to_8_bit(img: Image.Image, lo: int, hi: int) -> Image.Image:
    """Mode I to L, mapping lo..hi linearly onto 0..255 (rounded)."""
    if (lo, hi) == (0, 255):
        return img.convert("L")
    scale = 255 / (hi - lo)
    return img.point(lambda v: v * scale + (0.5 - lo * scale)).convert("L")


def _icc_colour_space(icc: bytes) -> bytes:
    return icc[16:20] if len(icc) >= 20 else b""


def _to_output_mode(
    img: Image.Image, fmt: str, icc: bytes | None
) -> tuple[Image.Image, bytes | None]:
    """Convert to a mode ``fmt`` can store; keep the ICC profile only if it is small and
    still applies. CMYK, and pixels with a profile above ICC_EMBED_MAX_BYTES, are
    converted to sRGB through their profile, which is then dropped."""
    if img.mode == "CMYK":
        converted = _to_srgb(img, icc) if icc else None
        img = img.convert("RGB") if converted is None else converted
        icc = None
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            img = img.convert("RGBA" if _has_alpha(img) else "RGB")
        except ValueError as e:
            raise UnsupportedImage(f"not a supported image: colour mode {img.mode}") from e
    if icc is not None and len(icc) > ICC_EMBED_MAX_BYTES:
        # Converted on the small output; a profile that does not fit the pixels is
        # ignored, as below.
        converted = _to_srgb(img, icc)
        img = img if converted is None else converted
        icc = None

    if fmt == "jpeg" and img.mode in ("LA", "RGBA"):
        img = _flatten_on_white(img)
    elif fmt in ("webp", "avif") and img.mode in ("L", "LA"):
        img = img.convert("RGBA" if img.mode == "LA" else "RGB")

    if icc is not None:
        space = _icc_colour_space(icc)
        grey = img.mode in ("L", "LA")
        # A grey profile on RGB pixels (or vice versa) is invalid; untagged means sRGB.
        if not ((space == b"GRAY" and grey) or (space == b"RGB " and not grey)):
            icc = None
    return img, icc


# Each mode _to_srgb converts: the profile colour space it needs, and the mode LittleCMS
# transforms (alpha is set aside: Pillow has no grey-with-alpha transform).
_PROFILE_SPACES = {
    "L": (b"GRAY", "L"),
    "LA": (b"GRAY", "L"),
    "RGB": (b"RGB ", "RGB"),
    "RGBA": (b"RGB ", "RGBA"),
    "CMYK": (b"CMYK", "CMYK"),
}


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """``img`` converted to sRGB through its ICC profile (grey stays grey), or None when
    the profile does not describe such pixels or LittleCMS cannot use it."""
    space, cms_mode = _PROFILE_SPACES.get(img.mode, (b"", ""))
    if _icc_colour_space(icc) != space:
        return None
    alpha = img.getchannel("A") if img.mode == "LA" else None
    src = img.convert(cms_mode) if img.mode != cms_mode else img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(
            src, profile, _srgb_profile(), outputMode="RGBA" if cms_mode == "RGBA" else "RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # a broken profile: the caller falls back to ignoring it
    if out is None or img.mode not in ("L", "LA"):
        return out
    out = out.convert("L")  # sRGB grey has R = G = B: nothing is lost
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _flatten_on_white(img: Image.Image) -> Image.Image:
    base = "L" if img.mode == "LA" else "RGB"
    background = Image.new(base, img.size, 255 if base == "L" else (255, 255, 255))
    background.paste(img.convert(base), mask=img.getchannel("A"))
    return background


# ------------------------------------------------------------------------------ encode


def _encode(
    img: Image.Image, fmt: str, quality: int, icc: bytes | None, **options: object
) -> bytes:
    # Drop everything the decoder attached (EXIF, XMP, text chunks, ...): some encoders
    # fall back to img.info. Only what is passed explicitly below is written.
    img.info = {}
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt == "jpeg":
        # No optimize/progressive: both cost an extra pass for a few percent of size.
        params.update(quality=quality, optimize=False, progressive=False)
    elif fmt == "webp":
        # method 4 is libwebp's default speed/size balance (6 is ~2x slower).
        params.update(quality=quality, method=4)
    elif fmt == "avif":
        params.update(quality=quality, speed=AVIF_SPEED)
    else:
        params.update(compress_level=6, optimize=False)
    params.update(options)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt.upper(), **params)
    except (OSError, ValueError) as e:
        # E.g. WebP's 16383-pixel side limit.
        raise PermanentError(f"cannot encode the result as {fmt}: {e}") from e
    return buf.getvalue()


# ------------------------------------------------------- for the other image operations


def open_image(data: bytes, max_pixels: int, box: tuple[int, int] = (0, 0)) -> Image.Image:
    """The source decoded, checked against ``max_pixels`` as in resize_image, upright
    (EXIF orientation applied), in sRGB (through its ICC profile, which is dropped) and
    in mode L, LA, RGB or RGBA; ``img.format`` is the source's format. With a ``box``, a
    JPEG may be decoded at a reduced scale that still covers it (the caller resamples)."""
    img, orientation, _, _ = _decode(data, box[0], box[1], "inside", max_pixels)
    source_format = img.format
    icc: bytes | None = img.info.get("icc_profile") or None
    img = _prepare_for_resampling(img)
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    if img.mode == "CMYK":
        img = (_to_srgb(img, icc) if icc else None) or img.convert("RGB")
    elif icc is not None:
        img = _to_srgb(img, icc) or img  # a profile that does not fit is ignored
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img, _ = _to_output_mode(img, "png", None)
    img.format = source_format
    return img


def writable_format(img: Image.Image) -> str | None:
    """The output format matching the source's (from open_image), if Mend writes it."""
    return _SOURCE_TO_OUTPUT.get(img.format or "")


def format_for_image(img: Image.Image, output_format: str | None, dest_key: str) -> str:
    """output_format_for an image from open_image; a source Mend cannot write (HEIC, GIF,
    ...) defaults to PNG when it has alpha, else JPEG."""
    source = img.format if writable_format(img) else "PNG" if img.mode in ("LA", "RGBA") else "JPEG"
    return output_format_for(output_format, dest_key, source)


def prepare_for_format(img: Image.Image, fmt: str) -> Image.Image:
    """``img`` (from open_image) in a mode ``fmt`` stores: JPEG flattens alpha on white."""
    return _to_output_mode(img, fmt, None)[0]


def encode_image(img: Image.Image, fmt: str, quality: int, **options: object) -> bytes:
    """``img`` (from prepare_for_format) encoded without metadata or profile (sRGB);
    ``options`` are the encoder's own (progressive=True, lossless=True, ...)."""
    return _encode(img, fmt, quality, None, **options)
