"""Real media for the tests, made with PyAV: an H.264 clip whose frames show their own
number (eight black/white bars, read back by `frame_number`) over a moving square, and
tones as WAV or any format FFmpeg writes. Kept tiny so the tests stay fast."""

from __future__ import annotations

import io
import math
from array import array

import av
from PIL import Image, ImageDraw

BARS = 8  # bits of the frame number, most significant first, left to right


def numbered_frame(number: int, size: tuple[int, int]) -> Image.Image:
    """Frame `number`: its bits as bars across the top half, a square moving below."""
    width, height = size
    img = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(img)
    bar = width / BARS
    for bit in range(BARS):
        on = number >> (BARS - 1 - bit) & 1
        draw.rectangle(
            (round(bit * bar), 0, round((bit + 1) * bar) - 1, height // 2),
            fill=(255, 255, 255) if on else (0, 0, 0),
        )
    x = number * 3 % max(1, width - 16)
    draw.rectangle((x, height * 3 // 4 - 8, x + 15, height * 3 // 4 + 7), fill=(220, 40, 40))
    return img


def frame_number(img: Image.Image) -> int:
    """The number `numbered_frame` drew, read from the centre of each bar."""
    grey = img.convert("L")
    width, height = grey.size
    bits = [
        int(grey.getpixel((int((bit + 0.5) * width / BARS), height // 4)) > 128)  # type: ignore[operator]
        for bit in range(BARS)
    ]
    return sum(b << (BARS - 1 - i) for i, b in enumerate(bits))


def h264_clip(
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    gop: int = 10,
    container: str = "mp4",
    with_audio: bool = False,
) -> bytes:
    """An H.264 clip of numbered frames, a keyframe every `gop` frames (so seeking lands
    before the timestamp and decoding must go forward), optionally with a tone."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = gop
        video.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        audio = out.add_stream("aac", rate=44100, layout="mono") if with_audio else None
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_image(numbered_frame(i, size))
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode(_tone_frame(seconds, 44100, 1, 440)):
                out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return buf.getvalue()


def _tone_frame(seconds: float, rate: int, channels: int, freq: float) -> av.AudioFrame:
    n = round(seconds * rate)
    wave = (int(math.sin(2 * math.pi * freq * i / rate) * 12000) for i in range(n))
    samples = array("h", (value for value in wave for _ in range(channels)))
    frame = av.AudioFrame(format="s16", layout="stereo" if channels == 2 else "mono", samples=n)
    frame.planes[0].update(samples.tobytes())
    frame.rate, frame.pts = rate, 0
    return frame


def tone(
    seconds: float = 1.0,
    rate: int = 44100,
    channels: int = 2,
    freq: float = 440.0,
    container: str = "wav",
    codec: str = "pcm_s16le",
) -> bytes:
    """A sine tone, as 16-bit WAV unless told otherwise (`mp3`/`libmp3lame`, ...)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo" if channels == 2 else "mono")
        names = [f.name for f in stream.codec_context.codec.audio_formats or ()]
        if names and "s16" not in names:
            stream.format = names[0]
        for packet in stream.encode(_tone_frame(seconds, rate, channels, freq)):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def probe_audio(data: bytes) -> tuple[str, str, float, int, int]:
    """(container, codec, decoded seconds, sample rate, channels) of an audio file."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        ctx = stream.codec_context
        seconds = samples / ctx.sample_rate
        return container.format.name, ctx.name, seconds, ctx.sample_rate, ctx.channels
