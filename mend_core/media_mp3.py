"""MP3 encoding with lameenc (LAME in its wheels). The LAME in PyAV's wheels makes the
same frames but takes about 2.8 times the CPU (bench/README.md, "media"), which made
audio_convert to MP3 much slower than the ffmpeg CLI.

PyAV still does the rest: its resampler gives lameenc what it takes (16-bit interleaved
PCM at the output's rate and layout), its MP3 parser cuts lameenc's bytes into frames,
and its MP3 muxer writes them after an ID3v2 tag and a Xing/LAME header. That header
carries LAME's encoder delay and the end padding (from skip-samples side data, as
FFmpeg's own LAME wrapper sends them), so decoders trim the output to the source's exact
length.

Loaded by workers only (audio_convert imports it inside `run`)."""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any

import av
import lameenc
from av.packet import PacketSideData, packet_sidedata_type_from_literal

# LAME's encoder delay (576 samples) plus the decoder's (528 + 1): what decoders drop at
# the start. FFmpeg's LAME wrapper reports the same as the encoder's initial padding.
_DELAY = 576 + 528 + 1
# As libmp3lame's default in FFmpeg (LAME's own default quality, -q 3), so the frames
# are those the ffmpeg CLI writes; lameenc's default is 2 (slower).
_QUALITY = 3
_SKIP_SAMPLES = packet_sidedata_type_from_literal("skip_samples")


def _skip(start: int, end: int) -> PacketSideData:
    """AV_PKT_DATA_SKIP_SAMPLES: samples to drop at the start and end of a packet."""
    data = PacketSideData(_SKIP_SAMPLES, 10)  # type: ignore[call-arg]  # (not in PyAV's stub)
    data.update(struct.pack("<IIBB", start, end, 0, 0))
    return data


class Mp3Encoder:
    """Encodes audio frames (any format, layout and rate) to constant-bitrate MP3 and
    muxes them into `out`, an MP3 container. `encode(None)` flushes."""

    def __init__(self, out: Any, rate: int, layout: str, bitrate: int) -> None:
        self._out = out
        # The muxer needs a stream; it takes its parameters from this (PyAV's) LAME
        # encoder, which is opened but never fed.
        self._stream = out.add_stream("libmp3lame", rate=rate, layout=layout)
        self._stream.bit_rate = bitrate
        self._channels = self._stream.codec_context.channels
        self._lame = lameenc.Encoder()
        self._lame.set_bit_rate(bitrate // 1000)  # kb/s, as FFmpeg's wrapper rounds it
        self._lame.set_in_sample_rate(rate)
        self._lame.set_out_sample_rate(rate)  # else LAME may pick a lower one itself
        self._lame.set_channels(self._channels)
        self._lame.set_quality(_QUALITY)
        self._lame.silence()
        self._resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        self._parser = av.CodecContext.create("mp3", "r")
        self._frame_samples = 1152 if rate >= 32000 else 576  # MPEG-1, else MPEG-2/2.5
        self._time_base = Fraction(1, rate)
        self._samples = 0  # fed to LAME
        self._packets = 0
        self._held: Any = None  # the latest frame, muxed once it is known not to be the last

    def encode(self, frame: Any | None) -> None:
        if frame is None:
            for pcm in self._resampler.resample(None):
                self._feed(pcm)
            if not self._samples:  # nothing to flush (lameenc refuses to)
                return
            self._split(self._lame.flush())
            self._split(None)
            if self._held is None:
                return
            padding = self._packets * self._frame_samples - _DELAY - self._samples
            start = _DELAY if self._packets == 1 else 0
            self._held.set_sidedata(_skip(start, max(padding, 0)))
            self._out.mux(self._held)
            self._held = None
            return
        for pcm in self._resampler.resample(frame):
            self._feed(pcm)

    def _feed(self, pcm: Any) -> None:
        self._samples += pcm.samples
        size = pcm.samples * self._channels * 2  # s16, interleaved
        self._split(self._lame.encode(bytes(memoryview(pcm.planes[0])[:size])))

    def _split(self, data: bytearray | None) -> None:
        """Cuts LAME's output into frames (None: the last) and muxes all but the latest."""
        for frame in self._parser.parse(data):
            packet = av.Packet(bytes(frame))
            packet.pts = packet.dts = self._packets * self._frame_samples
            packet.duration = self._frame_samples
            packet.time_base = self._time_base
            packet.stream = self._stream
            if self._packets == 0:
                packet.set_sidedata(_skip(_DELAY, 0))
            self._packets += 1
            if self._held is not None:
                self._out.mux(self._held)
            self._held = packet
