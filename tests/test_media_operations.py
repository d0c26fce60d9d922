"""video_thumbnail and audio_convert as operations (issue 10, items 4-5), on real media
made with PyAV: the thumbnail is the frame at the timestamp (read from the number each
frame shows), audio comes out in the asked codec with the source's duration, parameters
are checked at submit, and bad media fails permanently with a message a user can act on."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from mend_core.errors import PermanentError
from mend_core.operations import OperationLimits, operation
from mend_core.operations.video_thumbnail import parse_timestamp
from tests.media import frame_number, h264_clip, probe_audio, tone

LIMITS = OperationLimits(10_000, 100_000_000, 1 << 30, 3600)
THUMBNAIL = operation("video_thumbnail")
CONVERT = operation("audio_convert")


@pytest.fixture(scope="module")
def clip() -> bytes:
    return h264_clip()  # 2 s, 10 fps (frames 0-19), a keyframe every second, 160x96


@pytest.fixture(scope="module")
def wav() -> bytes:
    return tone(1.5)


def thumbnail(source: bytes, limits: OperationLimits = LIMITS, dest: str = "t.png", **params):
    out = THUMBNAIL.run(source, THUMBNAIL.params(**params), dest, limits, lambda p, m: None)
    return out, Image.open(io.BytesIO(out.data))


def convert(source: bytes, dest: str = "out.bin", limits: OperationLimits = LIMITS, **params):
    progress: list[tuple[int, str]] = []
    out = CONVERT.run(
        source, CONVERT.params(**params), dest, limits, lambda p, m: progress.append((p, m))
    )
    return out, progress


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def violations(op: Any, limits: OperationLimits = LIMITS, **params: Any) -> dict[str, str]:
    return {v.field: v.description for v in op.check(op.params(**params), limits)}


# ------------------------------------------------------------------------ thumbnail


@pytest.mark.parametrize(
    ("timestamp", "frame"),
    [
        ("", 0),
        ("0", 0),
        ("0.05", 0),
        ("0.999", 9),  # decoded forward from the keyframe at 0
        ("1.45", 14),  # seeks to the keyframe at 1.0, decodes forward to 1.4
        ("1.5", 15),  # exactly on a frame
        ("00:00:01.500", 15),
        ("0:01.99", 19),  # the last frame holds until the end
    ],
)
def test_thumbnail_is_the_frame_shown_at_the_timestamp(
    clip: bytes, timestamp: str, frame: int
) -> None:
    out, img = thumbnail(clip, timestamp=timestamp)
    assert frame_number(img) == frame
    assert (img.format, img.size) == ("PNG", (160, 96))
    assert (out.content_type, out.metadata) == ("image/png", out.metadata)
    assert out.details == {
        "video": {"duration_seconds": 2.0, "codec": "h264", "width": 160, "height": 96}
    }


def test_thumbnail_is_resized_like_resize(clip: bytes) -> None:
    out, img = thumbnail(clip, dest="t.jpg", timestamp="1.3", width=80)
    assert (img.format, img.size, frame_number(img)) == ("JPEG", (80, 48), 13)
    assert (out.metadata.width, out.metadata.height, out.metadata.format) == (80, 48, "jpeg")
    _, img = thumbnail(clip, timestamp="0.7", width=64, height=64, fit="cover", format="webp")
    assert (img.format, img.size) == ("WEBP", (64, 64))
    _, img = thumbnail(clip, timestamp="0.2", width=50, height=50, fit="fill")
    assert img.size == (50, 50)


def test_a_timestamp_past_the_end_names_the_duration(clip: bytes) -> None:
    for timestamp in ("2", "2.0", "00:01:00"):
        with pytest.raises(PermanentError, match=r"past the end of the video \(2\.000 s\)"):
            thumbnail(clip, timestamp=timestamp)


def test_a_truncated_video_fails_at_the_time_it_lacks() -> None:
    # Matroska keeps its header (and duration) first: cut in half, it opens and ends early.
    mkv = h264_clip(container="matroska")
    _, img = thumbnail(half(mkv), timestamp="0.3")
    assert frame_number(img) == 3
    with pytest.raises(PermanentError, match=r"past the end of the video \(.* decodable of 2.000"):
        thumbnail(half(mkv), timestamp="1.9")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda: tone(0.5, container="mp3", codec="libmp3lame"),
         "not a video: the source (mp3) has no video stream, only audio (mp3)"),
        (lambda: b"just some text, not a video\n" * 40, "not a supported video: unrecognised data"),
        (lambda: half(h264_clip()),
         "not a readable video: truncated or corrupt (moov atom not found)"),
        (lambda: b"", "not a supported video: the source is empty"),
        (lambda: tone(0.2), "not a video: the source (wav) has no video stream, only audio"),
    ],
    ids=["mp3", "text", "truncated-mp4", "empty", "wav"],
)
def test_what_is_no_video_fails_permanently_saying_why(source: Any, message: str) -> None:
    with pytest.raises(PermanentError) as failure:
        thumbnail(source(), timestamp="0.1")
    assert str(failure.value).startswith(message), failure.value


def test_caps_are_checked_from_the_headers(clip: bytes) -> None:
    small = OperationLimits(10_000, 160 * 96 - 1, 1 << 30, 3600)
    with pytest.raises(PermanentError, match=r"video frame too large: 160x96 exceeds 15359"):
        thumbnail(clip, small)
    short = OperationLimits(10_000, 100_000_000, 1 << 30, 1.5)
    with pytest.raises(PermanentError, match=r"video too long: 2.000 s exceeds the limit of 1.5 s"):
        thumbnail(clip, short)


def test_timestamps_are_seconds_or_a_clock() -> None:
    assert parse_timestamp("") == 0
    assert parse_timestamp("12.5") == 12.5
    assert parse_timestamp("01:02.5") == 62.5
    assert parse_timestamp("1:00:02.250") == 3602.25
    for bad in ("-1", "1:60", "1:2:3:4", "12s", " 1", "1e3", "00:00:01,5", "nan"):
        with pytest.raises(ValueError, match="must be seconds"):
            parse_timestamp(bad)


def test_thumbnail_parameters_are_checked_by_name() -> None:
    assert violations(THUMBNAIL, timestamp="00:00:01.500", width=80) == {}
    assert violations(THUMBNAIL) == {}  # the first frame, at its size
    bad = violations(
        THUMBNAIL, timestamp="1:75", width=-1, height=20_000, quality=0, fit="wide", format="gif"
    )
    assert set(bad) == {"timestamp", "width", "height", "quality", "fit", "format"}
    assert "HH:MM:SS.mmm" in bad["timestamp"]
    assert "past the longest video" in violations(THUMBNAIL, timestamp="3601")["timestamp"]
    assert set(violations(THUMBNAIL, width=80, fit="cover")) == {"fit"}


# ------------------------------------------------------------------------ audio


@pytest.mark.parametrize(
    ("fmt", "container", "codec", "rate"),
    [
        ("mp3", "mp3", "mp3float", 44100),
        ("aac", "aac", "aac", 44100),
        ("m4a", "mov,mp4,m4a,3gp,3g2,mj2", "aac", 44100),
        ("opus", "ogg", "opus", 48000),  # Opus runs at 48 kHz, not the source's 44.1
        ("ogg", "ogg", "vorbis", 44100),
        ("flac", "flac", "flac", 44100),
        ("wav", "wav", "pcm_s16le", 44100),
    ],
)
def test_audio_is_converted_to_each_format(
    wav: bytes, fmt: str, container: str, codec: str, rate: int
) -> None:
    out, _ = convert(wav, format=fmt)
    got = probe_audio(out.data)
    assert got[:2] == (container, codec)
    assert got[2] == pytest.approx(1.5, abs=0.05)
    assert got[3:] == (rate, 2)
    audio = out.details["audio"]
    assert audio["codec"] == {"mp3float": "mp3"}.get(codec, codec)
    assert (audio["duration_seconds"], audio["sample_rate"], audio["channels"]) == (1.5, rate, 2)
    assert audio["bytes"] == len(out.data)
    assert out.metadata is None


def test_bitrate_sample_rate_and_channels_are_applied(wav: bytes) -> None:
    out, _ = convert(wav, format="mp3", bitrate="64k", sample_rate=22050, channels=1)
    assert probe_audio(out.data)[1:] == ("mp3float", pytest.approx(1.5, abs=0.05), 22050, 1)
    assert out.details["audio"]["bitrate"] == 64000
    # About 64 kbit/s of data (plus headers), half of what 128k writes.
    assert 64000 * 1.5 / 8 <= len(out.data) < 64000 * 1.5 / 8 * 1.2
    louder, _ = convert(wav, format="mp3", bitrate="0.192M")
    assert louder.details["audio"]["bitrate"] == 192000
    assert len(louder.data) > 2.5 * len(out.data)


@pytest.mark.parametrize(
    ("seconds", "rate", "channels"),
    [(1.5, 0, 0), (0.01, 0, 0), (0.7, 22050, 1), (0.7, 8000, 2), (0.7, 48000, 2)],
    ids=["44k-stereo", "one-frame", "22k-mono", "8k-stereo", "48k-stereo"],
)
def test_mp3_decodes_to_the_exact_length_of_the_source(
    seconds: float, rate: int, channels: int
) -> None:
    # The Xing/LAME header carries LAME's encoder delay and the end padding, so decoders
    # give back exactly the source's samples (MPEG-1, -2 and -2.5 frames alike).
    out, _ = convert(tone(seconds), format="mp3", sample_rate=rate, channels=channels)
    want_rate = rate or 44100
    assert probe_audio(out.data)[2:] == (round(seconds * want_rate) / want_rate, want_rate,
                                         channels or 2)
    assert out.details["audio"]["duration_seconds"] == seconds


def test_the_format_follows_the_destination_key(wav: bytes) -> None:
    out, _ = convert(wav, dest="music/track.flac")
    assert (out.content_type, probe_audio(out.data)[1]) == ("audio/flac", "flac")
    with pytest.raises(PermanentError, match=r"format is not set and dest_key 'x.bin' has no"):
        convert(wav, dest="x.bin")
    # Checked against the format the key gives, as the submit would have.
    with pytest.raises(PermanentError, match="sample_rate: opus supports 8000, .* not 44100"):
        convert(wav, dest="a.opus", sample_rate=44100)


def test_progress_follows_the_decoded_time() -> None:
    _, progress = convert(tone(6.0, channels=1), format="wav")
    percents = [p for p, _ in progress]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert 30 <= percents[0] < 40 and percents[-1] == 90
    assert progress[-1][1] == "Converting audio: 6.0 of 6.0 s"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda: b"a text file, not audio\n" * 40,
         "not a supported audio file: unrecognised data"),
        (lambda: h264_clip(seconds=0.5),
         "not an audio file: the source (mov) has no audio stream, only video (h264)"),
        (lambda: half(tone(1.0, container="flac", codec="flac")),
         "not a readable audio file: truncated or corrupt"),
        (lambda: tone(1.0, container="mp3", codec="libmp3lame")[:300],
         "not a readable audio file: truncated or corrupt (Failed to find two consecutive MPEG"),
        (lambda: tone(1.0, container="ipod", codec="aac")[:600],
         "not a readable audio file: truncated or corrupt (moov atom not found)"),
    ],
    ids=["text", "video-without-audio", "truncated-flac", "truncated-mp3", "truncated-m4a"],
)
def test_what_is_no_audio_fails_permanently_saying_why(source: Any, message: str) -> None:
    with pytest.raises(PermanentError) as failure:
        convert(source(), format="mp3")
    assert str(failure.value).startswith(message), failure.value


def test_a_videos_sound_is_converted() -> None:
    out, _ = convert(h264_clip(seconds=1.0, with_audio=True), format="wav")
    assert probe_audio(out.data)[2] == pytest.approx(1.0, abs=0.05)


def test_audio_longer_than_the_cap_fails_before_decoding(wav: bytes) -> None:
    short = OperationLimits(10_000, 100_000_000, 1 << 30, 1.0)
    with pytest.raises(PermanentError, match=r"audio too long: 1.500 s exceeds the limit of 1 s"):
        convert(wav, limits=short, format="mp3")


def test_audio_parameters_are_checked_by_name() -> None:
    assert violations(CONVERT, format="mp3", bitrate="128k", sample_rate=44100, channels=2) == {}
    assert violations(CONVERT) == {}  # the format may come from dest_key
    bad = violations(CONVERT, format="mp3", bitrate="999k", sample_rate=96000, channels=6)
    assert bad == {
        "bitrate": "must be between 8k and 320k for mp3, got 999k",
        "sample_rate": "mp3 supports 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100,"
        " 48000 Hz, not 96000",
        "channels": "must be between 1 and 2 for mp3, got 6",
    }
    assert violations(CONVERT, bitrate="128 kbps") == {
        "bitrate": "must be bits per second like 128k, 96000 or 0.32M, got '128 kbps'"
    }
    assert set(violations(CONVERT, format="flac", bitrate="128k")) == {"bitrate"}
    assert set(violations(CONVERT, format="ogg", channels=1)) == {"channels"}
    assert set(violations(CONVERT, format="mp4")) == {"format"}
    assert set(violations(CONVERT, sample_rate=4000, channels=9)) == {"sample_rate", "channels"}
