"""image_optimize, image_watermark, image_colors and the HEIC/AVIF sources, run as the
worker's executor runs them (the operation's `run` on real encoded images), outputs
decoded; and their parameter checks, each bad value named by its parameter."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw
from pillow_heif import register_heif_opener

from mend_core.errors import ImageTooLarge, PermanentError, UnsupportedImage
from mend_core.operations import OperationLimits, Output, operation
from mend_devkit.sample import photo
from tests.images import decode, encode, exif_bytes, marked, noise, red_blue_swapped_icc

register_heif_opener()  # for the tests to write HEIC (Mend's imaging registers it too)
LIMITS = OperationLimits(max_dimension=10_000, max_pixels=50_000_000, max_source_bytes=1 << 26)


def run(
    job_type: str,
    source: bytes,
    dest_key: str = "out",
    _inputs: dict[str, bytes] | None = None,
    **params: Any,
) -> Output:
    """The operation run as the executor runs it, with `_inputs` as the objects its
    `inputs` name (downloaded by the executor)."""
    op = operation(job_type)
    p = op.params(**params)
    assert op.check(p, LIMITS) == [], op.check(p, LIMITS)
    assert {i.field for i in op.inputs(p)} == set(_inputs or {})
    extra = {"inputs": _inputs} if _inputs else {}
    return op.run(source, p, dest_key, LIMITS, lambda percent, message: None, **extra)


def problems(job_type: str, **params: object) -> dict[str, str]:
    op = operation(job_type)
    return {v.field: v.description for v in op.check(op.params(**params), LIMITS)}


# ------------------------------------------------------------------------ ΔE (CIE76)


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.dist(lab(a), lab(b))


BLUE, RED, YELLOW = (10, 120, 200), (200, 30, 30), (250, 220, 40)


def three_colours(width: int = 600, height: int = 400) -> Image.Image:
    """Blue 50%, red 30%, yellow 20%, in vertical bands."""
    img = Image.new("RGB", (width, height), RED)
    ImageDraw.Draw(img).rectangle((0, 0, width // 2 - 1, height), fill=BLUE)
    ImageDraw.Draw(img).rectangle((width * 8 // 10, 0, width, height), fill=YELLOW)
    return img


# ------------------------------------------------------------------------- optimize


@pytest.mark.parametrize(
    ("source_format", "fmt", "expected"),
    [
        ("JPEG", None, "JPEG"),
        ("JPEG", "webp", "WEBP"),
        ("JPEG", "avif", "AVIF"),
        ("PNG", None, "PNG"),
        ("PNG", "jpeg", "JPEG"),
        ("WEBP", "png", "PNG"),
        ("AVIF", None, "AVIF"),
        ("HEIF", None, "JPEG"),  # Mend does not write HEIC: JPEG, as documented
        ("HEIF", "webp", "WEBP"),
    ],
)
def test_optimize_writes_each_format_from_each_source(
    source_format: str, fmt: str | None, expected: str
) -> None:
    source = encode(photo(320, 240), source_format)
    out = run("image_optimize", source, format=fmt)
    img = decode(out.data)
    assert (img.format, img.size) == (expected, (320, 240))
    assert out.metadata is not None and out.metadata.format == expected.lower()
    assert out.content_type == f"image/{expected.lower()}"
    details = out.details["optimization"]
    assert details["input_bytes"] == len(source) and details["output_bytes"] == len(out.data)


def test_optimize_is_never_larger_than_the_source_in_the_same_format() -> None:
    # A JPEG saved at quality 30 re-encodes larger at the default 80: the source is kept.
    source = encode(noise(200, 150), "JPEG", quality=30)
    out = run("image_optimize", source)
    assert out.data == source
    assert out.details["optimization"] == {
        "input_bytes": len(source),
        "output_bytes": len(source),
        "saving_percent": 0.0,
        "kept_source": True,
    }
    # A JPEG saved at 100 shrinks, progressive with optimized Huffman tables.
    source = encode(photo(400, 300), "JPEG", quality=100)
    out = run("image_optimize", source)
    details = out.details["optimization"]
    assert len(out.data) < len(source) and not details["kept_source"]
    assert details["saving_percent"] == round((1 - len(out.data) / len(source)) * 100, 1) > 10
    assert decode(out.data).info.get("progressive") == 1


def test_optimize_strips_metadata_applies_orientation_and_converts_to_srgb() -> None:
    # Stored pure red under a profile that makes it blue, rotated by EXIF (6: 90° CW).
    img = Image.new("RGB", (60, 40), (255, 0, 0))
    source = encode(img, "JPEG", quality=95, exif=exif_bytes(6), icc_profile=red_blue_swapped_icc())
    out = decode(run("image_optimize", source, format="png").data)
    assert out.size == (40, 60)
    assert "icc_profile" not in out.info and not out.getexif()
    r, g, b = out.convert("RGB").getpixel((20, 30))  # type: ignore[misc]
    assert b > 200 and r < 60  # blue, as a colour-managed viewer showed the source


def test_optimize_writes_a_lossless_palette_png_when_the_colours_fit() -> None:
    source = encode(three_colours(), "PNG", compress_level=0)
    out = run("image_optimize", source)
    img = decode(out.data)
    assert img.mode == "P"
    assert ImageChops.difference(img.convert("RGB"), three_colours()).getbbox() is None
    # Too many colours for a palette: RGB, still lossless.
    many = noise(64, 64)
    img = decode(run("image_optimize", encode(many, "PNG", compress_level=0)).data)
    assert img.mode == "RGB" and img.tobytes() == many.tobytes()


def test_optimize_lossless_webp_and_max_size() -> None:
    source = encode(noise(300, 200), "PNG")
    out = run("image_optimize", source, format="webp", lossless=True)
    assert decode(out.data).convert("RGB").tobytes() == noise(300, 200).tobytes()
    out = run("image_optimize", source, format="webp", max_width=150, max_height=150)
    assert decode(out.data).size == (150, 100)
    out = run("image_optimize", source, max_width=1000)  # never enlarged
    assert decode(out.data).size == (300, 200)


def test_optimize_default_quality_is_63_for_avif_and_80_for_webp() -> None:
    # AV1's quality scale is steeper than WebP's (imgproxy's defaults: AVIF 63, WebP ~80).
    source = encode(photo(320, 240), "PNG")
    avif = run("image_optimize", source, format="avif").data
    assert avif == run("image_optimize", source, format="avif", quality=63).data
    assert avif is not None
    assert len(avif) < len(run("image_optimize", source, format="avif", quality=80).data or b"")
    webp = run("image_optimize", source, format="webp").data
    assert webp == run("image_optimize", source, format="webp", quality=80).data


def test_optimize_lossless_from_a_jpeg_source_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="lossless is not available for jpeg"):
        run("image_optimize", encode(photo(64, 48), "JPEG"), lossless=True)


def test_optimize_parameter_checks_name_the_parameter() -> None:
    assert problems("image_optimize", quality=0, format="gif", max_width=-1, max_height=10_001) == {
        "quality": "must be between 1 and 100, got 0",
        "format": "unknown format 'gif'; expected one of jpeg, png, webp, avif",
        "max_width": "must be between 1 and 10000, got -1",
        "max_height": "must be between 1 and 10000, got 10001",
    }
    assert "use png or webp" in problems("image_optimize", format="avif", lossless=True)["lossless"]


# ------------------------------------------------------------------------ watermark


def changed(before: Image.Image, after: Image.Image) -> tuple[int, int, int, int] | None:
    """The box of pixels that differ by more than JPEG noise."""
    diff = ImageChops.difference(before.convert("RGB"), after.convert("RGB")).convert("L")
    return diff.point(lambda v: 255 if v > 24 else 0).getbbox()


def inside(box: tuple[int, int, int, int] | None, region: tuple[int, int, int, int]) -> bool:
    return box is not None and all(
        (a >= b) if i < 2 else (a <= b) for i, (a, b) in enumerate(zip(box, region, strict=True))
    )


GREY = Image.new("RGB", (400, 300), (60, 60, 60))


@pytest.mark.parametrize(
    ("position", "region"),
    [
        ("north_west", (10, 10, 200, 150)),
        ("north_east", (200, 10, 390, 150)),
        ("south_east", (200, 150, 390, 290)),
        ("south_west", (10, 150, 200, 290)),
        ("center", (100, 75, 300, 225)),
        ("north", (100, 10, 300, 150)),
        ("south", (100, 150, 300, 290)),
        ("east", (200, 75, 390, 225)),
        ("west", (10, 75, 200, 225)),
    ],
)
def test_text_watermark_is_in_its_region_and_nowhere_else(
    position: str, region: tuple[int, int, int, int]
) -> None:
    out = run(
        "image_watermark", encode(GREY, "PNG"), "o.png", text="Mend", position=position, margin=10
    )
    box = changed(GREY, decode(out.data))
    assert inside(box, region), (position, box)
    assert box is not None and box[2] - box[0] > 20  # the text is really there


def test_image_watermark_scale_opacity_and_tile() -> None:
    logo = Image.new("RGBA", (100, 50), (255, 255, 255, 255))
    inputs = {"watermark_bucket": encode(logo, "PNG")}
    common = dict(watermark_bucket="logos", watermark_key="logo.png", _inputs=inputs)
    source = encode(GREY, "PNG")

    out = decode(
        run(
            "image_watermark",
            source,
            "o.png",
            position="south_east",
            scale=0.25,
            opacity=1.0,
            **common,
        ).data
    )
    assert changed(GREY, out) == (300, 250, 400, 300)  # 100 px wide (a quarter), in the corner
    assert out.getpixel((350, 275)) == (255, 255, 255)

    out = decode(run("image_watermark", source, "o.png", scale=0.25, opacity=0.5, **common).data)
    value = out.getpixel((200, 150))[0]  # type: ignore[index]
    assert abs(value - (60 + 255) / 2) <= 2  # half way between the image and the mark

    out = decode(
        run(
            "image_watermark", source, "o.png", position="tile", scale=0.1, margin=10, **common
        ).data
    )
    box = changed(GREY, out)
    assert box is not None and box[0] == 10 and box[1] == 10 and box[2] > 350 and box[3] > 250
    assert out.getpixel((5, 5)) == (60, 60, 60)  # the margin stays clear


def test_watermark_output_format_follows_the_destination_key() -> None:
    source = encode(photo(200, 150), "JPEG")
    for key, fmt in (("o.webp", "WEBP"), ("o.avif", "AVIF"), ("o.jpg", "JPEG"), ("o", "JPEG")):
        assert decode(run("image_watermark", source, key, text="x").data).format == fmt


def test_a_watermark_too_small_to_tile_is_a_permanent_error() -> None:
    logo = encode(Image.new("RGBA", (10, 10), (255, 255, 255, 255)), "PNG")
    with pytest.raises(PermanentError, match="too small to tile"):
        run(
            "image_watermark",
            encode(Image.new("RGB", (4000, 4000)), "PNG"),
            position="tile",
            scale=0.001,
            watermark_bucket="b-logos",
            watermark_key="l.png",
            _inputs={"watermark_bucket": logo},
        )


def test_a_corrupt_watermark_image_fails_with_a_readable_error() -> None:
    with pytest.raises(UnsupportedImage, match="not a supported image"):
        run(
            "image_watermark",
            encode(GREY, "PNG"),
            watermark_bucket="b-logos",
            watermark_key="l.png",
            _inputs={"watermark_bucket": b"not an image"},
        )


def test_watermark_parameter_checks_name_the_parameter() -> None:
    assert problems("image_watermark") == {
        "text": "text or watermark_bucket and watermark_key is required"
    }
    assert problems(
        "image_watermark",
        text="x" * 201,
        opacity=1.5,
        scale=0.0,
        margin=-1,
        font_size=5000,
        color="red",
        position="middle",
    ) == {
        "text": "must be at most 200 characters",
        "opacity": "must be between 0 and 1, got 1.5",
        "scale": "must be above 0 and at most 1, got 0.0",
        "margin": "must be between 0 and 10000, got -1",
        "font_size": "must be between 1 and 2000, got 5000",
        "color": "must be #RRGGBB or #RRGGBBAA, got 'red'",
        "position": (
            "unknown position 'middle'; expected one of center, north, north_east, east,"
            " south_east, south, south_west, west, north_west, tile"
        ),
    }
    both = problems("image_watermark", text="x", watermark_bucket="b", watermark_key="k.png")
    assert both["text"] == "give text or watermark_bucket/watermark_key, not both"
    assert both["watermark_bucket"].startswith("must be a valid S3 bucket name")
    assert problems("image_watermark", watermark_bucket="logos") == {"watermark_key": "is required"}
    assert problems(
        "image_watermark", watermark_bucket="logos", watermark_key="l.png", color="#ffffff"
    ) == {"color": "applies to a text watermark only"}


# --------------------------------------------------------------------------- colors


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF", "HEIF"])
def test_colors_are_the_known_colours_with_their_shares(fmt: str) -> None:
    out = run("image_colors", encode(three_colours(), fmt, quality=90), "", count=3)
    assert out.data is None  # no destination: nothing to store
    colors = out.details["colors"]
    assert len(colors) == 3
    for color, known, share in zip(colors, (BLUE, RED, YELLOW), (50, 30, 20), strict=True):
        rgb = (color["red"], color["green"], color["blue"])
        assert delta_e(rgb, known) < 3, (fmt, color, known)
        assert color["hex"] == "#" + bytes(rgb).hex()
        assert abs(color["percent"] - share) < 2, (fmt, color)


def test_colors_merge_shades_and_skip_transparent_pixels() -> None:
    # Asked for 8, a three-colour JPEG still has three: its noise is not a colour.
    out = run("image_colors", encode(three_colours(), "JPEG", quality=80), "", count=8)
    assert len(out.details["colors"]) == 3
    # A green stripe on transparency is all green.
    img = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    img.paste((0, 200, 0, 255), (0, 0, 20, 100))
    out = run("image_colors", encode(img, "PNG"), "")
    assert [(c["hex"], c["percent"]) for c in out.details["colors"]] == [("#00c800", 100.0)]


def test_colors_with_a_destination_write_the_palette_as_json() -> None:
    out = run("image_colors", encode(three_colours(), "PNG"), "palettes/p.json", count=2)
    assert out.content_type == "application/json"
    assert out.data is not None
    assert json.loads(out.data) == {"colors": out.details["colors"]}


def test_colors_of_a_24_megapixel_jpeg_decode_at_a_reduced_scale() -> None:
    big = three_colours().resize((6000, 4000), Image.Resampling.NEAREST)
    # 24 MP decoded in full would pass 20 MP; the 1/8-scale decode does not.
    limits = OperationLimits(10_000, 24_000_000, 1 << 26)
    op = operation("image_colors")
    out = op.run(encode(big, "JPEG"), op.params(count=3), "", limits, lambda p, m: None)
    assert out.details["colors"][0]["hex"] in ("#0a78c8", "#0978c9", "#0a78c9", "#0977c8")


def test_colors_count_is_checked() -> None:
    assert problems("image_colors", count=17) == {"count": "must be between 1 and 16, got 17"}
    assert problems("image_colors", count=-1) == {"count": "must be between 1 and 16, got -1"}
    assert problems("image_colors") == {}


# ----------------------------------------------------------- HEIC/AVIF for resize too


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_resize_reads_heic_and_avif_and_writes_avif(fmt: str) -> None:
    source = encode(marked(400, 300), fmt, quality=90)
    out = run("image_resize", source, "thumb.avif", width=200)
    img = decode(out.data)
    assert (img.format, img.size) == ("AVIF", (200, 150))
    assert out.metadata is not None and out.metadata.format == "avif"
    r, g, b = img.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
    assert r > 200 and b < 60  # the red corner is still top-left


def test_heic_pixel_cap_is_checked_from_the_header() -> None:
    source = encode(Image.new("RGB", (2000, 1000)), "HEIF")
    op = operation("image_optimize")
    with pytest.raises(ImageTooLarge):
        op.run(
            source, op.params(), "o", OperationLimits(10_000, 1_000_000, 1 << 26), lambda p, m: None
        )


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_heic_and_avif_are_unsupported_images(fmt: str) -> None:
    data = encode(photo(200, 150), fmt)
    with pytest.raises(UnsupportedImage):
        run("image_optimize", data[: len(data) // 2])
