"""Reading video and audio with PyAV (FFmpeg, bundled in its wheels): open a source held
in memory through a short list of demuxers, find its stream, check the caps before
decoding, and turn FFmpeg's errors into messages a user can act on.

Loaded by workers only (operations import it inside `run`)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import av
import av.error
import av.logging
from av.container import InputContainer

from mend_core.errors import PermanentError

# FFmpeg's messages reach the errors raised (e.log), which the job's error quotes, only
# while PyAV's log callback is on; they are not printed again (the job says it all).
logging.getLogger("libav").setLevel(logging.CRITICAL)


@contextmanager
def _ffmpeg_messages() -> Iterator[None]:
    """PyAV's log callback on, for a single-threaded step only: with codec threads
    running it can deadlock (a codec thread logging waits for the GIL that the thread
    waiting on the codec holds)."""
    av.logging.set_level(av.logging.ERROR)
    try:
        yield
    finally:
        av.logging.set_level(None)

# Demuxers Mend reads; FFmpeg knows hundreds more (each is attack surface, and some
# probe text as media). Everything else is refused before its header parser runs.
DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,mpeg,ogg,"
    "mp3,wav,w64,flac,aac,aiff,caf"
)
SUPPORTED = "MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg, MP3, WAV, FLAC, AAC, AIFF or CAF"

# What FFmpeg's demuxers and decoders raise on corrupt, truncated or hostile input.
DECODE_ERRORS = (av.error.FFmpegError, EOFError, ValueError, IndexError, MemoryError)


class UnsupportedMedia(PermanentError):
    """The source is not video or audio Mend can read, or not the kind the job needs."""


class MediaTooLong(PermanentError):
    def __init__(self, kind: str, seconds: float, limit: float) -> None:
        super().__init__(f"{kind} too long: {seconds:.3f} s exceeds the limit of {limit:g} s")


def _reason(e: Exception) -> str:
    """FFmpeg's own words when it logged some (`moov atom not found`), else the error's."""
    log = getattr(e, "log", None)
    if log and len(log) >= 3 and log[2]:
        return str(log[2]).strip()
    return getattr(e, "strerror", None) or str(e)


def corrupt(kind: str, e: Exception) -> UnsupportedMedia:
    return UnsupportedMedia(f"not a readable {kind}: truncated or corrupt ({_reason(e)})")


@contextmanager
def open_source(data: bytes, kind: str) -> Iterator[InputContainer]:
    """The source opened for reading; UnsupportedMedia when no allowed demuxer takes it.
    `kind` ("video", "audio file") words the messages."""
    if not data:
        raise UnsupportedMedia(f"not a supported {kind}: the source is empty")
    try:
        with _ffmpeg_messages():
            container = av.open(io.BytesIO(data), "r", options={"format_whitelist": DEMUXERS})
    except DECODE_ERRORS as e:
        reason = _reason(e)
        if "whitelist" in reason:
            found = str(getattr(e, "log", ("", "it"))[1]).split(",")[0]
            raise UnsupportedMedia(
                f"not a supported {kind}: {found} is not a format Mend reads"
                f" (expected {SUPPORTED})"
            ) from None
        if getattr(e, "log", None):  # a demuxer recognised it, then found it broken
            raise corrupt(kind, e) from e
        raise UnsupportedMedia(
            f"not a supported {kind}: unrecognised data (expected {SUPPORTED})"
        ) from None
    try:
        yield container
    finally:
        container.close()


def first_stream(container: InputContainer, kind: str) -> Any:
    """The first video (not cover art) or audio stream; UnsupportedMedia naming what the
    source holds instead (an MP3 sent to video/thumbnail). `kind`: "video" or "audio"."""
    for stream in container.streams:
        if stream.type != kind:
            continue
        if kind == "video" and stream.disposition & av.stream.Disposition.attached_pic:
            continue  # an audio file's cover picture is not video
        return stream
    found = ", ".join(f"{s.type} ({codec_name(s)})" for s in container.streams
                      if s.type in ("video", "audio")) or "neither audio nor video"
    noun = "a video" if kind == "video" else "an audio file"
    raise UnsupportedMedia(
        f"not {noun}: the source ({container.format.name.split(',')[0]}) has no"
        f" {kind} stream, only {found}"
    )


def codec_name(stream: Any) -> str:
    """The codec as ffprobe names it ("mp3", "av1"), not its decoder ("mp3float")."""
    return str(stream.codec_context.codec.canonical_name)


def duration_seconds(container: InputContainer, stream: Any) -> float | None:
    """The stream's duration from the container's headers, None when they do not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def check_duration(seconds: float | None, limit: float, kind: str) -> None:
    if seconds is not None and seconds > limit:
        raise MediaTooLong(kind, seconds, limit)
