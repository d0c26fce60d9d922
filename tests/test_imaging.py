"""resize_image: every result is decoded again and checked for real size, format, pixels."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from mend_core.errors import ImageTooLarge, UnsupportedImage
from mend_core.imaging import (
    ICC_EMBED_MAX_BYTES,
    PNG_MAX_CHUNK_BYTES,
    ResizedImage,
    output_format_for,
    resize_image,
)
from tests.images import (
    decode,
    encode,
    exif_bytes,
    linear_grey_icc,
    marked,
    noise,
    padded_icc,
    png_with_header_size,
    px,
    red_blue_swapped_icc,
    srgb_icc,
)

MAX = 50_000_000


def resize(data: bytes, **kwargs: object) -> ResizedImage:
    kwargs.setdefault("max_pixels", MAX)
    return resize_image(data, **kwargs)  # type: ignore[arg-type]


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# ------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("src", "box", "fit", "expected"),
    [
        ((400, 300), (200, 200), "inside", (200, 150)),
        ((300, 400), (200, 200), "inside", (150, 200)),
        ((100, 50), (400, 400), "inside", (400, 200)),  # upscaled to the box
        ((400, 300), (200, 200), "cover", (200, 200)),
        ((400, 300), (100, 300), "cover", (100, 300)),
        ((400, 300), (100, 300), "fill", (100, 300)),
        ((400, 300), (200, 0), "inside", (200, 150)),
        ((400, 300), (0, 150), "inside", (200, 150)),
        ((400, 300), (200, 0), "cover", (200, 150)),  # one side given: aspect kept
        ((400, 300), (0, 30), "fill", (40, 30)),
        ((2000, 1), (100, 0), "inside", (100, 1)),  # never rounds to zero
    ],
)
def test_fit_modes(
    src: tuple[int, int], box: tuple[int, int], fit: str, expected: tuple[int, int]
) -> None:
    out = resize(encode(marked(*src), "PNG"), width=box[0], height=box[1], fit=fit)
    img = decode(out.data)
    assert img.size == expected == (out.width, out.height)
    assert img.format == "PNG" and out.format == "png" and out.content_type == "image/png"


def test_cover_crops_the_centre() -> None:
    # Red band on the left 1/8 of a 400x200 image: a centred 200x200 crop of the 400x200
    # source (scaled 1:1) keeps x 100..300 only, so no red survives.
    src = Image.new("RGB", (400, 200), BLUE)
    src.paste(RED, (0, 0, 50, 200))
    out = decode(resize(encode(src, "PNG"), width=200, height=200, fit="cover").data)
    assert out.size == (200, 200)
    assert close(px(out, 0, 100), BLUE)
    assert close(px(out, 199, 100), BLUE)


def test_fill_stretches_without_cropping() -> None:
    out = decode(resize(encode(marked(400, 400), "PNG"), width=100, height=50, fit="fill").data)
    assert out.size == (100, 50)
    assert close(px(out, 2, 2), RED)
    assert close(px(out, 98, 48), BLUE)


def test_large_jpeg_is_resized_exactly() -> None:
    # Big enough for the DCT-scaled decode (draft) to kick in; the output size must not
    # move by a rounding pixel because of it.
    data = encode(marked(2001, 1501), "JPEG", quality=90)
    cases: list[tuple[dict[str, Any], tuple[int, int]]] = [
        ({"width": 100, "height": 100}, (100, 75)),
        ({"width": 250, "height": 250, "fit": "cover"}, (250, 250)),
        ({"width": 300, "height": 100, "fit": "fill"}, (300, 100)),
        ({"width": 0, "height": 300}, (400, 300)),
    ]
    for kwargs, size in cases:
        out = decode(resize(data, **kwargs).data)
        assert out.size == size
    out = decode(resize(data, width=400, height=0).data)
    assert close(px(out, 5, 5), RED)
    assert close(px(out, 300, 250), BLUE)


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("dest_key", "explicit", "source_fmt", "expected"),
    [
        ("out/a.jpg", None, "PNG", "JPEG"),
        ("out/a.JPEG", None, "PNG", "JPEG"),
        ("out/a.png", None, "JPEG", "PNG"),
        ("out/a.webp", None, "JPEG", "WEBP"),
        ("out/a.png", "webp", "JPEG", "WEBP"),  # explicit wins
        ("out/a.png", "JPG", "PNG", "JPEG"),
        ("out/a", None, "PNG", "PNG"),  # no extension: the source's format
        ("out/a.bin", None, "WEBP", "WEBP"),
        ("out.d/a", None, "GIF", "JPEG"),  # GIF cannot be written: jpeg
        ("", None, "BMP", "JPEG"),
    ],
)
def test_output_format(dest_key: str, explicit: str | None, source_fmt: str, expected: str) -> None:
    src = encode(marked(64, 48), source_fmt)
    out = resize(src, width=32, height=0, dest_key=dest_key, output_format=explicit)
    img = decode(out.data)
    assert img.format == expected
    assert out.format == expected.lower()
    assert out.content_type == f"image/{expected.lower()}"
    assert img.size == (32, 24)


def test_output_format_for() -> None:
    assert output_format_for(None, "a.b/c") == "jpeg"
    assert output_format_for(None, "x.WebP") == "webp"
    with pytest.raises(ValueError):
        output_format_for("gif", "x.png")


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_size(fmt: str) -> None:
    data = encode(noise(256, 256), "PNG")
    low = resize(data, width=256, height=256, output_format=fmt, quality=20)
    high = resize(data, width=256, height=256, output_format=fmt, quality=95)
    default = resize(data, width=256, height=256, output_format=fmt)
    assert len(low.data) < len(default.data) < len(high.data)


# ---------------------------------------------------------------- metadata and colour


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(1, (0, 0)), (2, (1, 0)), (3, (1, 1)), (4, (0, 1))]
    + [(5, (0, 0)), (6, (1, 0)), (7, (1, 1)), (8, (0, 1))],
)
@pytest.mark.parametrize("size", [(200, 100), (1600, 800)])  # the large one is drafted
def test_exif_orientation_applied(
    orientation: int, red_corner: tuple[int, int], size: tuple[int, int]
) -> None:
    data = encode(marked(*size), "JPEG", quality=95, exif=exif_bytes(orientation))
    out = resize(data, width=50, height=0)  # the width of the upright image
    img = decode(out.data)
    rotated = orientation >= 5
    assert img.size == ((50, 100) if rotated else (50, 25))
    assert not img.getexif()
    # Sample the centre of each quadrant: only the expected one is red.
    w, h = img.size
    for cx in (0, 1):
        for cy in (0, 1):
            pixel = px(img, w // 8 + cx * (w * 3 // 4), h // 8 + cy * (h * 3 // 4))
            assert close(pixel, RED if (cx, cy) == red_corner else BLUE), (cx, cy, pixel)


def test_cover_with_rotation() -> None:
    # Raw 1600x800 + orientation 6 is an upright 800x1600 portrait.
    data = encode(marked(1600, 800), "JPEG", quality=95, exif=exif_bytes(6))
    img = decode(resize(data, width=300, height=100, fit="cover").data)
    assert img.size == (300, 100)
    img = decode(resize(data, width=100, height=0, fit="cover").data)
    assert img.size == (100, 200)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_metadata_stripped_icc_kept(fmt: str) -> None:
    icc = srgb_icc()
    data = encode(
        marked(120, 80),
        "JPEG",
        exif=exif_bytes(1, make="SecretCam"),
        icc_profile=icc,
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>secret</x:xmpmeta>",
        comment=b"secret comment",
    )
    out = resize(data, width=60, height=0, output_format=fmt)
    img = decode(out.data)
    assert img.info.get("icc_profile") == icc
    assert not img.getexif()
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment"):
        assert key not in img.info, key
    assert b"SecretCam" not in out.data and b"secret" not in out.data


# The red/blue-swapped profile tells a kept profile (pixels still stored red, the profile
# embedded) from an applied one (pixels blue, untagged: sRGB).
@pytest.mark.parametrize(
    ("icc_size", "applied"),
    [
        (None, False),  # a small profile (652 bytes) is kept as it came
        (ICC_EMBED_MAX_BYTES, False),
        (ICC_EMBED_MAX_BYTES + 4, True),
        (5_000_000, True),  # issue 8 item 22: a 5 MB profile made a 5.2 MB thumbnail
    ],
)
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_large_icc_profile_is_applied_then_dropped(
    fmt: str, icc_size: int | None, applied: bool
) -> None:
    icc = red_blue_swapped_icc()
    if icc_size is not None:
        icc = padded_icc(icc, icc_size)
    data = encode(Image.new("RGB", (400, 300), RED), "JPEG", quality=95, icc_profile=icc)
    assert len(data) > len(icc)
    out = resize(data, width=100, height=75, output_format=fmt)
    img = decode(out.data)
    assert (img.format, img.size, img.mode) == (fmt.upper(), (100, 75), "RGB")
    if applied:
        assert "icc_profile" not in img.info
        assert len(out.data) < 5_000
        assert close(px(img, 50, 37), BLUE, tol=10)
    else:
        assert img.info.get("icc_profile") == icc
        assert close(px(img, 50, 37), RED, tol=10)


@pytest.mark.parametrize(("mode", "fmt"), [("L", "jpeg"), ("LA", "png")])
def test_large_grey_profile_is_applied_and_grey_stays_grey(mode: str, fmt: str) -> None:
    src = Image.new(mode, (200, 200), 128 if mode == "L" else (128, 255))
    if mode == "LA":
        src.paste((128, 0), (0, 0, 100, 200))  # left half transparent
    icc = padded_icc(linear_grey_icc(), 100_000)
    img = decode(
        resize(encode(src, "PNG", icc_profile=icc), width=50, height=50, output_format=fmt).data
    )
    assert (img.size, img.mode) == ((50, 50), mode)
    assert "icc_profile" not in img.info
    # Linear 128 is half the light: 188 in sRGB (128 if the profile were ignored).
    assert abs(px(img, 40, 25)[0] - 188) <= 3
    if mode == "LA":
        assert px(img, 5, 25)[1] == 0 and px(img, 40, 25)[1] == 255


def test_png_with_a_large_colour_profile_decodes() -> None:
    # Issue 8 item 23: Pillow inflates a PNG's iCCP chunk up to 1 MiB by default, so a
    # valid 5 MB profile failed as a corrupt header.
    icc = padded_icc(red_blue_swapped_icc(), 5_000_000)
    data = encode(Image.new("RGB", (400, 300), RED), "PNG", icc_profile=icc)
    assert len(data) > 5_000_000  # random padding: the chunk stays big compressed
    out = resize(data, width=100, height=75, output_format="jpeg")
    img = decode(out.data)
    assert (img.format, img.size, img.mode) == ("JPEG", (100, 75), "RGB")
    assert "icc_profile" not in img.info and len(out.data) < 5_000
    assert close(px(img, 50, 37), BLUE, tol=10)


def test_png_chunk_beyond_the_limit_is_refused_naming_it() -> None:
    # A profile of zeros compresses ~1000:1: the limit is what stops a zlib bomb.
    icc = padded_icc(srgb_icc(), PNG_MAX_CHUNK_BYTES + 4, compressible=True)
    data = encode(Image.new("RGB", (40, 30), RED), "PNG", icc_profile=icc)
    assert len(data) < 100_000
    limit_before = PngImagePlugin.MAX_TEXT_CHUNK
    with pytest.raises(UnsupportedImage) as exc:
        resize(data, width=20, height=15)
    assert str(exc.value) == (
        "not a supported image: a compressed PNG chunk (colour profile or text)"
        " inflates past the 16 MiB limit"
    )
    assert limit_before == PngImagePlugin.MAX_TEXT_CHUNK
    # Right at the limit it decodes.
    icc = padded_icc(srgb_icc(), PNG_MAX_CHUNK_BYTES, compressible=True)
    data = encode(Image.new("RGB", (40, 30), RED), "PNG", icc_profile=icc)
    img = decode(resize(data, width=20, height=15).data)
    assert img.size == (20, 15) and "icc_profile" not in img.info


def test_png_alpha_flattened_on_white_for_jpeg() -> None:
    src = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    src.paste((255, 0, 0, 255), (25, 25, 75, 75))
    out = resize(encode(src, "PNG"), width=50, height=50, output_format="jpeg")
    img = decode(out.data)
    assert img.format == "JPEG" and img.mode == "RGB"
    assert close(px(img, 2, 2), WHITE)
    assert close(px(img, 25, 25), RED)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_alpha_kept_for_png_and_webp(fmt: str) -> None:
    src = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    src.paste((255, 0, 0, 255), (25, 25, 75, 75))
    img = decode(resize(encode(src, "PNG"), width=50, height=50, output_format=fmt).data)
    assert img.mode == "RGBA"
    assert px(img, 2, 2)[3] == 0
    assert close(px(img, 25, 25), (255, 0, 0, 255))


def test_palette_gif_with_transparency_to_png() -> None:
    src = Image.new("P", (40, 40), 0)
    src.putpalette([255, 255, 255, 255, 0, 0] + [0] * 762)
    src.paste(1, (10, 10, 30, 30))
    data = encode(src, "GIF", transparency=0)
    img = decode(resize(data, width=20, height=20, output_format="png").data)
    assert img.mode == "RGBA" and img.size == (20, 20)
    assert px(img, 1, 1)[3] == 0
    assert close(px(img, 10, 10), (255, 0, 0, 255))


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(marked(80, 80).convert("CMYK"), "JPEG")
    img = decode(resize(data, width=40, height=40).data)
    assert img.mode == "RGB"
    assert close(px(img, 2, 2), RED, tol=60)


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    src = Image.new("I;16", (40, 40), 32768)
    img = decode(resize(encode(src, "PNG"), width=20, height=20, output_format="jpeg").data)
    assert img.mode == "L"
    assert abs(px(img, 10, 10)[0] - 128) <= 3


def grey_bands(mode: str, values: list[int]) -> Image.Image:
    """Vertical bands of the given grey values, 20x20 each."""
    img = Image.new(mode, (20 * len(values), 20))
    for i, value in enumerate(values):
        img.paste(value, (20 * i, 0, 20 * i + 20, 20))
    return img


@pytest.mark.parametrize(
    "values",
    [
        [0, 128, 255],  # issue 8 item 21: 8-bit data stored in 32 bits came out black
        [0, 32768, 65535],  # 16-bit data stored in 32 bits
        [-1000, 0, 1000],  # anything else is stretched over its own range
        [100_000, 200_000, 300_000],
    ],
)
def test_32_bit_grey_tiff_is_scaled_by_its_values(values: list[int]) -> None:
    data = encode(grey_bands("I", values), "TIFF")
    assert decode(data).mode == "I"
    img = decode(resize(data, width=30, height=10, output_format="png").data)
    assert (img.mode, img.size) == ("L", (30, 10))
    assert [px(img, x, 5)[0] for x in (5, 15, 25)] == [0, 128, 255]


def test_grey_to_webp() -> None:
    img = decode(
        resize(encode(marked(40, 40, "L"), "PNG"), width=20, height=20, output_format="webp").data
    )
    assert img.format == "WEBP" and img.size == (20, 20)


# ------------------------------------------------------------------ hostile input


def test_decompression_bomb_rejected_from_header(recwarn: pytest.WarningsRecorder) -> None:
    data = png_with_header_size(100_000, 100_000)
    assert len(data) < 100
    with pytest.raises(ImageTooLarge) as exc:
        resize(data, width=100, height=100, max_pixels=MAX)
    assert str(exc.value) == f"image too large: 100000x100000 exceeds {MAX} pixels"
    assert not recwarn.list


def test_pillow_bomb_limit_never_warns_or_leaks(recwarn: pytest.WarningsRecorder) -> None:
    # 10000x10000 is above Pillow's default warning threshold (~89 Mpx) but within ours:
    # no DecompressionBombWarning, and the tiny body is then reported as truncated.
    limit_before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UnsupportedImage):
            resize(
                png_with_header_size(10_000, 10_000), width=10, height=10, max_pixels=200_000_000
            )
    assert not recwarn.list
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_max_pixels_applies_to_source_and_output() -> None:
    data = encode(marked(100, 100), "PNG")
    with pytest.raises(ImageTooLarge, match=r"^image too large: 100x100 exceeds 9999 pixels$"):
        resize(data, width=10, height=10, max_pixels=9_999)
    with pytest.raises(ImageTooLarge, match=r"^image too large: 1000x1000 exceeds 999999 "):
        resize(data, width=1000, height=0, max_pixels=999_999)


def test_non_image_is_unsupported() -> None:
    with pytest.raises(UnsupportedImage, match="^not a supported image: "):
        resize(b"%PDF-1.7 definitely not an image" * 10, width=10, height=10)
    with pytest.raises(UnsupportedImage, match="^not a supported image: "):
        resize(b"", width=10, height=10)


def test_format_outside_the_allow_list_is_unsupported() -> None:
    data = encode(marked(20, 20), "PPM")  # Pillow reads PPM; Mend does not accept it
    with pytest.raises(UnsupportedImage):
        resize(data, width=10, height=10)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_unsupported(fmt: str) -> None:
    data = encode(noise(200, 200), fmt)
    with pytest.raises(UnsupportedImage, match="^not a supported image: truncated or corrupt"):
        resize(data[: len(data) // 2], width=50, height=50)


def test_large_truncated_jpeg_is_unsupported_on_the_draft_path() -> None:
    data = encode(noise(1200, 800), "JPEG")
    with pytest.raises(UnsupportedImage):
        resize(data[: len(data) // 2], width=100, height=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 0, "height": 0},
        {"width": -1, "height": 10},
        {"width": 10, "height": 10, "fit": "stretch"},
        {"width": 10, "height": 10, "quality": 0},
        {"width": 10, "height": 10, "quality": 101},
        {"width": 10, "height": 10, "output_format": "gif"},
        {"width": 10, "height": 10, "max_pixels": 0},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        resize(encode(marked(20, 20), "PNG"), **kwargs)
