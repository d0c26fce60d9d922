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


def clip(seconds: float = 40.0, fps: int = 10, size: tuple[int, int] = (480, 270)) -> bytes:
    """A short H.264 MP4 of moving photo-like frames (a keyframe every 2 s), for the dev
    stack's video walkthrough; PyAV is imported only when asked."""
    import io

    import av

    still = photo(size[0] * 2, size[1])
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = fps * 2
        video.codec_context.options = {"preset": "ultrafast", "crf": "28"}
        frames = round(seconds * fps)
        for i in range(frames):
            left = (still.width - size[0]) * i // max(frames - 1, 1)
            frame = av.VideoFrame.from_image(still.crop((left, 0, left + size[0], size[1])))
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return buf.getvalue()


def chord_wav(seconds: float = 20.0, rate: int = 44100) -> bytes:
    """A stereo 16-bit WAV of a soft chord, for the dev stack's audio walkthrough."""
    import io
    import math
    import struct
    import wave

    frames = bytearray()
    for i in range(round(seconds * rate)):
        t = i / rate
        value = sum(math.sin(2 * math.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
        sample = int(value * 9000)
        frames += struct.pack("<hh", sample, sample)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buf.getvalue()
