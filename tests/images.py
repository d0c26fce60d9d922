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


# ICC profiles are a 128-byte header, a tag count, then (signature, offset, size) entries
# pointing at each tag's data; these helpers rebuild LittleCMS's sRGB profile with other tags.


def _icc_tags(icc: bytes) -> dict[bytes, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    entries = (struct.unpack_from(">4sII", icc, 132 + 12 * i) for i in range(count))
    return {sig: icc[offset : offset + size] for sig, offset, size in entries}


def _icc(header: bytes, tags: dict[bytes, bytes], colour_space: bytes = b"") -> bytes:
    table_end = 132 + 12 * len(tags)
    entries, body = [], bytearray()
    for sig, data in tags.items():
        body += b"\0" * (-len(body) % 4)  # tag data starts on a 4-byte boundary
        entries.append(struct.pack(">4sII", sig, table_end + len(body), len(data)))
        body += data
    head = bytearray(header[:128])
    head[0:4] = struct.pack(">I", table_end + len(body))
    if colour_space:
        head[16:20] = colour_space
    head[84:100] = bytes(16)  # profile id (an MD5) zero: "not computed"
    return bytes(head) + struct.pack(">I", len(tags)) + b"".join(entries) + bytes(body)


def red_blue_swapped_icc() -> bytes:
    """An RGB profile with sRGB's red and blue primaries swapped: a pixel stored as pure
    red is pure blue to a colour-managed viewer. Shows whether a profile was applied."""
    srgb = srgb_icc()
    tags = _icc_tags(srgb)
    tags[b"rXYZ"], tags[b"bXYZ"] = tags[b"bXYZ"], tags[b"rXYZ"]
    return _icc(srgb, tags)


def linear_grey_icc() -> bytes:
    """A grey profile with gamma 1.0: stored 128 is half the light, 188 in sRGB."""
    srgb = srgb_icc()
    tags = _icc_tags(srgb)
    gamma_1 = b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0100)
    grey = {sig: tags[sig] for sig in (b"desc", b"cprt", b"wtpt")} | {b"kTRC": gamma_1}
    return _icc(srgb, grey, colour_space=b"GRAY")


def padded_icc(icc: bytes, size: int, *, compressible: bool = False) -> bytes:
    """``icc`` grown to exactly ``size`` bytes by a private tag LittleCMS ignores (random
    bytes unless ``compressible``): a valid profile as large as wanted."""
    base = len(_icc(icc, _icc_tags(icc)))
    data_size = size - (base + -base % 4) - 12 - 12  # alignment, table entry, type header
    assert data_size >= 0, (size, base)
    data = bytes(data_size) if compressible else random.Random(size).randbytes(data_size)
    tags = _icc_tags(icc) | {b"mEnd": b"data" + bytes(4) + struct.pack(">I", 1) + data}
    padded = _icc(icc, tags)
    assert len(padded) == size
    return padded


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
