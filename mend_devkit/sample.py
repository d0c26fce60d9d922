"""Synthetic photo-like images (gradients, shapes, sensor-like noise) for the dev stack's
sample input, tests and benchmarks: compressible like a photo, unlike flat colour."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFilter


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90).resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(base)
    step = max(width, height) // 12 or 1
    for i in range(24):
        x = (i * 7919 + seed * 104729) % width
        y = (i * 6271 + seed * 1299709) % height
        r = step // 2 + (i * 37) % step
        colour = ((i * 53) % 256, (i * 97 + seed) % 256, (i * 151) % 256)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(max(1, width // 400)))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(base, noise, 0.12)
