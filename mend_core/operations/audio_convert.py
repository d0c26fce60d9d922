"""audio_convert: the source's first audio stream re-encoded (PyAV), e.g. WAV to MP3 128k."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from mend_core.errors import PermanentError, Violation
from mend_core.operations import NO_INPUTS, Operation, OperationLimits, Output, Progress


@dataclass(frozen=True)
class ConvertParams:
    """Field names are those of mend.v1.AudioConvertParameters. 0, "" and None mean
    unset."""

    format: str | None = None  # one of FORMATS; None: from the destination key
    bitrate: str = ""  # "128k"
    sample_rate: int = 0
    channels: int = 0


@dataclass(frozen=True)
class AudioFormat:
    muxer: str  # FFmpeg's
    codec: str  # FFmpeg's encoder
    content_type: str
    bitrates: tuple[int, int] | None = None  # the range a bitrate may take; None: fixed
    default_bitrate: int = 0
    rates: tuple[int, ...] = ()  # the sample rates it supports; (): any
    max_channels: int = 8


_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000,
              88200, 96000)
FORMATS: dict[str, AudioFormat] = {
    "mp3": AudioFormat("mp3", "libmp3lame", "audio/mpeg", (8000, 320_000), 128_000,
                       _MP3_RATES, 2),
    "aac": AudioFormat("adts", "aac", "audio/aac", (8000, 512_000), 128_000, _AAC_RATES),
    "opus": AudioFormat("opus", "libopus", "audio/ogg", (6000, 510_000), 96_000,
                        (8000, 12000, 16000, 24000, 48000), 2),
    # FFmpeg's native Vorbis encoder: stereo only, quality-based (bit_rate is ignored).
    "ogg": AudioFormat("ogg", "vorbis", "audio/ogg", max_channels=2),
    "flac": AudioFormat("flac", "flac", "audio/flac"),
    "wav": AudioFormat("wav", "pcm_s16le", "audio/wav"),
    "m4a": AudioFormat("ipod", "aac", "audio/mp4", (8000, 512_000), 128_000, _AAC_RATES),
}
_EXTENSIONS = {"." + name: name for name in FORMATS}
# The codec's name (as ffprobe reports it) where FFmpeg's encoder is a library's.
_CODEC_NAMES = {"libmp3lame": "mp3", "libopus": "opus"}

_BITRATE = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)([kKmM]?)")


def parse_bitrate(text: str) -> int:
    """Bits per second from ffmpeg's -b:a spelling: "128k", "96000", "0.32M"."""
    match = _BITRATE.fullmatch(text)
    if match is None:
        raise ValueError(f"must be bits per second like 128k, 96000 or 0.32M, got {text!r}")
    number, unit = match.groups()
    return round(float(number) * {"": 1, "k": 1000, "m": 1_000_000}[unit.lower()])


def _kbps(bits: int) -> str:
    return f"{bits // 1000}k"


def check(p: ConvertParams, limits: OperationLimits) -> list[Violation]:
    problems: list[tuple[str, str | None]] = []
    fmt = FORMATS.get(p.format or "")
    if p.format and fmt is None:
        problems.append(("format", f"unknown format {p.format!r}; expected"
                                   f" {', '.join(FORMATS)}"))
    if p.bitrate:
        try:
            bits = parse_bitrate(p.bitrate)
        except ValueError as e:
            problems.append(("bitrate", str(e)))
        else:
            low, high = (fmt.bitrates if fmt else None) or (6000, 512_000)
            if fmt is not None and fmt.bitrates is None:
                why = "quality-based" if p.format == "ogg" else "lossless"
                problems.append(("bitrate", f"does not apply to {p.format} ({why})"))
            elif not low <= bits <= high:
                problems.append(("bitrate", f"must be between {_kbps(low)} and {_kbps(high)}"
                                            f"{f' for {p.format}' if fmt else ''},"
                                            f" got {p.bitrate}"))
    if p.sample_rate:
        if not 8000 <= p.sample_rate <= 192_000:
            problems.append(("sample_rate", f"must be between 8000 and 192000 Hz,"
                                            f" got {p.sample_rate}"))
        elif fmt is not None and fmt.rates and p.sample_rate not in fmt.rates:
            rates = ", ".join(map(str, fmt.rates))
            problems.append(("sample_rate", f"{p.format} supports {rates} Hz,"
                                            f" not {p.sample_rate}"))
    if p.channels:
        high = fmt.max_channels if fmt else 8
        if not 1 <= p.channels <= high:
            problems.append(("channels", f"must be between 1 and {high}"
                                         f"{f' for {p.format}' if fmt else ''},"
                                         f" got {p.channels}"))
        elif p.format == "ogg" and p.channels != 2:
            problems.append(("channels", "ogg (FFmpeg's Vorbis encoder) is stereo only"))
    return [Violation(name, problem) for name, problem in problems if problem]


def _format_for(p: ConvertParams, dest_key: str, limits: OperationLimits) -> str:
    """The output format: as asked, else from the destination key's extension, with the
    parameters checked against it (they were checked without it at submit)."""
    if p.format:
        return p.format
    dot = dest_key.rfind(".")
    name = _EXTENSIONS.get(dest_key[dot:].lower()) if dot > dest_key.rfind("/") else None
    if name is None:
        raise PermanentError(
            f"format is not set and dest_key {dest_key!r} has no audio extension"
            f" ({', '.join(_EXTENSIONS)})"
        )
    bad = check(replace(p, format=name), limits)
    if bad:
        raise PermanentError("; ".join(f"{v.field}: {v.description}" for v in bad))
    return name


def _nearest_rate(rate: int, rates: tuple[int, ...]) -> int:
    """The source's rate when the format takes it, else the lowest supported above it
    (no detail lost), else the highest."""
    if not rates or rate in rates:
        return rate
    above = [r for r in rates if r > rate]
    return min(above) if above else max(rates)


# FFmpeg's usual layout for a channel count, for sources without one (a WAV without a
# channel mask says only "2 channels", which no encoder takes) and for remixes.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _layout(channels: int, source: Any) -> str:
    """The source's layout when it keeps its channels and names them, else the usual."""
    if channels == source.nb_channels and not source.name.endswith("channels"):
        return str(source.name)
    return _LAYOUTS[channels]


def _sample_format(codec: Any, source: str) -> str:
    """The source's sample format when the encoder takes it (no conversion), else the
    encoder's first."""
    names = [f.name for f in codec.audio_formats or ()]
    return source if source in names or not names else names[0]


def run(
    source: bytes, p: ConvertParams, dest_key: str, limits: OperationLimits, progress: Progress,
    inputs: Mapping[str, bytes] = NO_INPUTS,
) -> Output:
    import av

    from mend_core import media, media_mp3  # PyAV, lameenc: loaded by workers only

    name = _format_for(p, dest_key, limits)
    fmt = FORMATS[name]
    buf = io.BytesIO()
    with media.open_source(source, "audio file") as container:
        stream = media.first_stream(container, "audio")
        duration = media.duration_seconds(container, stream)
        media.check_duration(duration, limits.max_media_seconds, "audio")
        ctx = stream.codec_context
        channels = p.channels or (2 if name == "ogg" else min(ctx.channels, fmt.max_channels))
        rate = p.sample_rate or _nearest_rate(ctx.sample_rate, fmt.rates)
        out = av.open(buf, "w", format=fmt.muxer)
        try:
            layout = _layout(channels, ctx.layout)
            bitrate = parse_bitrate(p.bitrate) if p.bitrate else fmt.default_bitrate
            encode: Callable[[Any], None]
            if name == "mp3":
                encode = media_mp3.Mp3Encoder(out, rate, layout, bitrate).encode
            else:
                encode = _encoder(out, name, fmt, rate, layout, ctx.format.name, bitrate)
            samples = _transcode(container, stream, encode, duration, limits, progress)
        except media.DECODE_ERRORS as e:
            raise media.corrupt("audio file", e) from e
        finally:
            out.close()
    data = buf.getvalue()
    seconds = samples / ctx.sample_rate
    audio = {
        "duration_seconds": round(seconds, 3),
        "codec": _CODEC_NAMES.get(fmt.codec, fmt.codec),
        "bitrate": bitrate or round(len(data) * 8 / seconds),
        "sample_rate": rate,
        "channels": channels,
        "bytes": len(data),
    }
    return Output(data, fmt.content_type, details={"audio": audio})


def _encoder(
    out: Any, name: str, fmt: AudioFormat, rate: int, layout: str, source_format: str,
    bitrate: int,
) -> Callable[[Any], None]:
    """PyAV's encoder for the format (it resamples and re-frames to its liking), muxing
    what it gives; encode(None) flushes."""
    encoder: Any = out.add_stream(fmt.codec, rate=rate, layout=layout)
    if name == "ogg":
        encoder.codec_context.options = {"strict": "experimental"}
    encoder.format = _sample_format(encoder.codec_context.codec, source_format)
    if bitrate:
        encoder.bit_rate = bitrate

    def encode(frame: Any) -> None:
        for packet in encoder.encode(frame):
            out.mux(packet)

    return encode


def _transcode(
    container: Any,
    stream: Any,
    encode: Callable[[Any], None],
    duration: float | None,
    limits: OperationLimits,
    progress: Progress,
) -> int:
    """Decodes, encodes (`encode(None)` flushes) and reports progress from the decoded
    time. Returns the number of source samples."""
    from mend_core import media

    samples, reported, rate = 0, -1, stream.codec_context.sample_rate
    time_base = Fraction(1, rate)
    for frame in container.decode(stream):
        # Timestamps from the sample count: the source's gaps and jumps are not copied.
        frame.pts, frame.time_base = samples, time_base
        encode(frame)
        samples += frame.samples
        done = samples / rate
        if done > limits.max_media_seconds:  # the headers did not say, or lied
            raise media.MediaTooLong("audio", done, limits.max_media_seconds)
        if duration:
            percent = 30 + min(60, int(60 * done / duration))
            if percent != reported:
                progress(percent, f"Converting audio: {done:.1f} of {duration:.1f} s")
                reported = percent
    encode(None)
    if samples == 0:
        raise media.UnsupportedMedia("not a readable audio file: no audio could be decoded")
    return samples


OPERATION = Operation(
    type="audio_convert",
    summary="convert audio to another format (mp3, aac, opus, ogg, flac, wav, m4a)",
    params=ConvertParams,
    check=check,
    run=run,
)
