"""Test images made on the fly: no binary fixtures in the repo."""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageDraw


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def px(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    """The pixel at (x, y) as a tuple, whatever the mode."""
    value = img.getpixel((x, y))
    if isinstance(value, tuple):
        return tuple(int(v) for v in value)
    assert isinstance(value, int | float)
    return (int(value),)


def marked(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Blue, with a red block in the top-left corner: shows rotations, flips and crops."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    ImageDraw.Draw(img).rectangle((0, 0, width // 4, height // 4), fill=(255, 0, 0))
    return img.convert(mode) if mode != "RGB" else img


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    """Incompressible content, so encoder quality visibly changes the size."""
    rnd = random.Random(seed)
    return Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))


def srgb_icc() -> bytes:
    icc: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return icc


def exif_bytes(orientation: int = 1, make: str = "MendCam") -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = make
    return exif.tobytes()


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    # Signature (8) + length (4) + b"IHDR" (4): width and height follow, then 5 bytes,
    # then the CRC over type + data.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)
