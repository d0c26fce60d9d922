"""Generated inputs of the operation benchmarks, each made once and cached in bench/.data/
(git-ignored, beside resize's photos): a 60 s 1080p H.264 clip whose frames carry their
own number, a 3-minute music-like WAV, and a 24 MP photo with a clear dominant colour."""

from __future__ import annotations

import array
import io
import math
import random
import wave
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

DATA = Path(__file__).parent / ".data"

CLIP_SIZE = (1920, 1080)
CLIP_FPS = 30
CLIP_SECONDS = 60
CLIP_GOP = 250  # x264's default keyframe interval: seeking to 30 s decodes from 25 s
# The frame number, drawn as a row of black/white squares (most significant bit first),
# so the frame an implementation returns can be read back from its output.
CODE_BITS = 11
CODE_CELL = 80
CODE_TOP = 40


def cached(name: str, make: Callable[[Path], None]) -> Path:
    """bench/.data/NAME, made by `make(tmp_path)` on first use."""
    path = DATA / name
    if not path.exists():
        print(f"  generating {name} (once) ...", flush=True)
        DATA.mkdir(exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        make(tmp)
        tmp.rename(path)
    return path


def clip() -> Path:
    """A 60 s 1920x1080 30 fps H.264 MP4 (libx264 via PyAV, preset medium, CRF 23, a
    keyframe every 250 frames): a photo-like scene panning, a moving box, and the frame
    number as a code (`frame_number` reads it back)."""
    return cached("clip-1080p-60s.mp4", _make_clip)


def _make_clip(path: Path) -> None:
    import av

    from mend_devkit.sample import photo

    w, h = CLIP_SIZE
    scene = photo(w + CLIP_FPS * CLIP_SECONDS, h + 200, seed=7)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = CLIP_GOP
        stream.codec_context.options = {"preset": "medium", "crf": "23", "sc_threshold": "0"}
        for i in range(CLIP_FPS * CLIP_SECONDS):
            frame = scene.crop((i, (i * 3) % 200, i + w, (i * 3) % 200 + h))
            draw = ImageDraw.Draw(frame)
            x = (i * 17) % (w - 300)
            draw.rectangle((x, 600, x + 300, 900), fill=(200, 40, 40))
            draw_code(draw, i)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def draw_code(draw: ImageDraw.ImageDraw, number: int) -> None:
    draw.rectangle((0, 0, CODE_CELL * (CODE_BITS + 1), CODE_TOP + CODE_CELL * 2), fill=(128,) * 3)
    for bit in range(CODE_BITS):
        on = number >> (CODE_BITS - 1 - bit) & 1
        x = CODE_CELL // 2 + bit * CODE_CELL
        draw.rectangle((x, CODE_TOP, x + CODE_CELL - 8, CODE_TOP + CODE_CELL),
                       fill=(255,) * 3 if on else (0,) * 3)


def frame_number(img: Image.Image) -> int:
    """The number `draw_code` drew on a full-size frame (read at each square's centre)."""
    grey = img.convert("L")
    number = 0
    for bit in range(CODE_BITS):
        x = CODE_CELL // 2 + bit * CODE_CELL + (CODE_CELL - 8) // 2
        number = number << 1 | (grey.getpixel((x, CODE_TOP + CODE_CELL // 2)) > 128)  # type: ignore[operator]
    return number


AUDIO_RATE = 44100
AUDIO_SECONDS = 180


def wav() -> Path:
    """A 3-minute 44.1 kHz 16-bit stereo WAV: chords changing every half second, a
    decaying pluck per note and a little noise, so the MP3 encoder has music-like work."""
    return cached("music-3min-44k-stereo.wav", _make_wav)


def _make_wav(path: Path) -> None:
    rng = random.Random(3)
    rate, n = AUDIO_RATE, AUDIO_RATE * AUDIO_SECONDS
    samples = array.array("h", bytes(4 * n))
    roots = [220.0, 246.9, 261.6, 293.7, 329.6, 349.2, 392.0]
    half = rate // 2
    for start in range(0, n, half):
        root = rng.choice(roots)
        freqs = [root, root * 1.26, root * 1.5, root * 2]
        steps = [2 * math.pi * f / rate for f in freqs]
        for k in range(min(half, n - start)):
            env = math.exp(-3.0 * k / half)
            tone = sum(math.sin(s * k) for s in steps)
            left = 5200 * env * tone + rng.gauss(0, 300)
            right = 5200 * env * (tone + 0.3 * math.sin(steps[0] * 0.5 * k)) + rng.gauss(0, 300)
            samples[2 * (start + k)] = max(-32768, min(32767, int(left)))
            samples[2 * (start + k) + 1] = max(-32768, min(32767, int(right)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


DOMINANT_SIZE = (6000, 4000)


def dominant_photo() -> Path:
    """A 24 MP JPEG (q90) of a landscape-like scene with a clear dominant colour: a blue
    sky gradient over ~60 % of the frame, hills and a meadow below, sensor-like noise."""
    return cached("dominant-6000x4000-q90.jpg", _make_dominant)


def _make_dominant(path: Path) -> None:
    from PIL import ImageFilter

    w, h = DOMINANT_SIZE
    sky_bottom = int(h * 0.6)
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    for y in range(sky_bottom):  # a sky: slightly lighter towards the horizon
        t = y / sky_bottom
        draw.line((0, y, w, y), fill=(int(60 + 30 * t), int(120 + 30 * t), int(200 + 20 * t)))
    draw.rectangle((0, sky_bottom, w, h), fill=(70, 120, 50))  # a meadow
    draw.polygon([(0, sky_bottom + 40), (w // 3, sky_bottom - 500), (2 * w // 3, sky_bottom),
                  (w, sky_bottom - 300), (w, h), (0, h)], fill=(80, 90, 70))  # hills
    draw.rectangle((0, int(h * 0.85), w, h), fill=(150, 120, 70))  # a path
    for i in range(30):  # trees
        x = (i * 7919) % w
        draw.ellipse((x - 120, sky_bottom - 200, x + 120, sky_bottom + 150), fill=(30, 70, 30))
    img = img.filter(ImageFilter.GaussianBlur(3))
    noise = Image.effect_noise((w, h), 20).convert("RGB")
    img = Image.blend(img, noise, 0.08)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())
