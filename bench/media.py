"""`python -m bench media`: video/thumbnail and audio/convert vs the ffmpeg CLI.

- thumbnail: the frame at 30 s of a 60 s 1920x1080 30 fps H.264 clip (generated once with
  PyAV, keyframes every 250 frames, so both seek to 25 s and decode 150 frames), as a
  full-size JPEG. Mend: `video_thumbnail.run` called in this process (the worker's code
  path: the source's bytes in, JPEG bytes out, written to a file), no process start.
  ffmpeg: `ffmpeg -ss 30 -i clip.mp4 -frames:v 1 out.jpg`, including its process start.
  Same frame: every frame of the clip carries its number as a code of squares, read
  back from both outputs; the PSNR between the two decoded outputs is shown too.
- audio: a 3-minute 44.1 kHz stereo WAV to MP3 at 128 kb/s. Mend: `audio_convert.run`
  in this process (PyAV decodes, lameenc's LAME encodes); ffmpeg: `ffmpeg -i in.wav
  -b:a 128k out.mp3` (its libmp3lame). Same audio: the MP3 frames compared one by one
  and the two files decoded and compared sample by sample.

Each round runs both, in alternating order; medians of wall time (the goal's measure)
and of CPU time (this process plus the waited-for ffmpeg child). Needs Debian's ffmpeg
(`make bench` installs it through scripts/ensure-packages.sh)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from bench import contest, media_inputs, report
from bench.resize import psnr

NAME = "media"
AT_SECONDS = 30
GOALS = {"thumbnail": 1.0, "audio": 0.95}


def _limits() -> Any:
    from mend_core.operations import OperationLimits

    return OperationLimits(max_dimension=10_000, max_pixels=100_000_000,
                           max_source_bytes=1 << 30)


def _no_progress(percent: int, message: str) -> None:
    pass


def _ffmpeg(*args: str) -> list[str]:
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]


def thumbnail(rounds: int, warmup: int, work: Path) -> dict[str, Any]:
    from mend_core.operations.video_thumbnail import ThumbnailParams
    from mend_core.operations.video_thumbnail import run as thumbnail_run

    clip = media_inputs.clip()
    mend_out, ffmpeg_out = work / "mend.jpg", work / "ffmpeg.jpg"
    params, limits = ThumbnailParams(timestamp=str(AT_SECONDS)), _limits()

    def mend() -> int:
        out = thumbnail_run(clip.read_bytes(), params, "thumb.jpg", limits, _no_progress)
        assert out.data is not None
        mend_out.write_bytes(out.data)
        return len(out.data)

    def ffmpeg() -> int:
        subprocess.run(_ffmpeg("-ss", str(AT_SECONDS), "-i", str(clip), "-frames:v", "1",
                               str(ffmpeg_out)), check=True)
        return ffmpeg_out.stat().st_size

    runs = contest.alternate({"mend": mend, "ffmpeg": ffmpeg}, rounds, warmup)
    images = {n: Image.open(io.BytesIO(p.read_bytes())).convert("RGB")
              for n, p in (("mend", mend_out), ("ffmpeg", ffmpeg_out))}
    expected = AT_SECONDS * media_inputs.CLIP_FPS
    result: dict[str, Any] = {"source_bytes": clip.stat().st_size, "expected_frame": expected}
    for name, r in runs.items():
        result[name] = {**r.summary(), "output_bytes": r.output,
                        "frame": media_inputs.frame_number(images[name]),
                        "size": list(images[name].size)}
    result["psnr_mend_vs_ffmpeg_db"] = round(psnr(images["mend"], images["ffmpeg"]), 2)
    result["same_frame"] = result["mend"]["frame"] == result["ffmpeg"]["frame"] == expected
    return _ratios(result, "thumbnail")


def audio(rounds: int, warmup: int, work: Path) -> dict[str, Any]:
    from mend_core.operations.audio_convert import ConvertParams
    from mend_core.operations.audio_convert import run as convert_run

    wav = media_inputs.wav()
    mend_out, ffmpeg_out = work / "mend.mp3", work / "ffmpeg.mp3"
    params, limits = ConvertParams(format="mp3", bitrate="128k"), _limits()

    def mend() -> int:
        out = convert_run(wav.read_bytes(), params, "out.mp3", limits, _no_progress)
        assert out.data is not None
        mend_out.write_bytes(out.data)
        return len(out.data)

    def ffmpeg() -> int:
        subprocess.run(_ffmpeg("-i", str(wav), "-b:a", "128k", str(ffmpeg_out)), check=True)
        return ffmpeg_out.stat().st_size

    runs = contest.alternate({"mend": mend, "ffmpeg": ffmpeg}, rounds, warmup)
    result: dict[str, Any] = {"source_bytes": wav.stat().st_size}
    packets, decoded = {}, {}
    for name, r in runs.items():
        path = mend_out if name == "mend" else ffmpeg_out
        probe, packets[name], decoded[name] = _probe_audio(path)
        result[name] = {**r.summary(), "output_bytes": r.output, **probe}
    # The MP3 frames compared one by one (the CLI's file also has an ID3 tag).
    result["packets"] = len(packets["mend"]), len(packets["ffmpeg"])
    result["identical_packets"] = sum(
        a == b for a, b in zip(packets["mend"], packets["ffmpeg"], strict=False))
    # LAME writes its version into frames' unused bits: lameenc's names itself 4.0, the
    # CLI's 3.100, so a frame with room for it differs while the audio does not.
    result["identical_samples"] = decoded["mend"] == decoded["ffmpeg"]
    return _ratios(result, "audio")


def _probe_audio(path: Path) -> tuple[dict[str, Any], list[bytes], str]:
    """What the file holds (codec, rate, channels, decoded seconds), its packets and a
    digest of its decoded samples."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        packets = [bytes(p) for p in c.demux(s) if p.size]
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        samples, digest = 0, hashlib.sha256()
        for f in c.decode(s):
            samples += f.samples
            for plane in f.planes:  # planar float: one per channel
                digest.update(memoryview(plane)[:f.samples * 4])
        return {"codec": s.codec_context.name, "sample_rate": s.codec_context.sample_rate,
                "channels": s.codec_context.channels,
                "seconds": round(samples / s.codec_context.sample_rate, 3)}, packets, \
            digest.hexdigest()


def _ratios(result: dict[str, Any], task: str) -> dict[str, Any]:
    m, f = result["mend"], result["ffmpeg"]
    result["ratio_wall"] = contest.ratio(f["wall_ms"], m["wall_ms"])
    result["ratio_cpu"] = contest.ratio(f["cpu_ms"], m["cpu_ms"])
    result["goal"] = GOALS[task]
    same = result.get("same_frame", True) and result.get("identical_samples", True)
    result["met"] = bool(result["ratio_wall"] >= GOALS[task] and same)
    return result


def versions() -> dict[str, str]:
    import av

    line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    lavc = av.library_versions.get("libavcodec", ())
    return {"pyav": av.__version__, "pyav_libavcodec": ".".join(map(str, lavc)),
            "lameenc": importlib.metadata.version("lameenc"),
            "ffmpeg_cli": line.split("\n", 1)[0].removeprefix("ffmpeg version ").split()[0]}


LABELS = {"thumbnail": "video/thumbnail at 30 s, 1080p H.264 60 s",
          "audio": "audio/convert 3 min WAV -> MP3 128k"}


def tables(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "Mend ms (wall)", "ffmpeg CLI ms (wall)", "Mend/ffmpeg (wall)",
              "Mend ms (CPU)", "ffmpeg ms (CPU)", "output bytes Mend / ffmpeg", "check",
              "goal", "met", "others (cores)"]
    rows = []
    for task, r in results.items():
        m, f = r["mend"], r["ffmpeg"]
        if task == "thumbnail":
            check = (f"frame {m['frame']} / {f['frame']} (want {r['expected_frame']}), "
                     f"PSNR {r['psnr_mend_vs_ffmpeg_db']} dB")
        else:
            check = (f"{m['seconds']} s / {f['seconds']} s; MP3 frames identical: "
                     f"{r['identical_packets']:,} of {r['packets'][0]:,} / {r['packets'][1]:,};"
                     f" decoded samples identical: {'yes' if r['identical_samples'] else 'NO'}")
        rows.append([LABELS[task], f"{m['wall_ms']:,.0f}", f"{f['wall_ms']:,.0f}",
                     f"{r['ratio_wall']:.2f}x", f"{m['cpu_ms']:,.0f}", f"{f['cpu_ms']:,.0f}",
                     f"{m['output_bytes']:,} / {f['output_bytes']:,}", check,
                     f">= {r['goal']:g}x", "yes" if r["met"] else "NO",
                     f"{m['others_cores']:.1f} / {f['others_cores']:.1f}"])
    return header, rows


def markdown(data: dict[str, Any]) -> str:
    header, rows = tables(data["results"])
    m, v, s = data["machine"], data["versions"], data["settings"]
    return f"""# Media benchmark: video/thumbnail and audio/convert vs the ffmpeg CLI

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; load average at start {data['loadavg']}
- Mend: PyAV {v['pyav']} (libavcodec {v['pyav_libavcodec']}) and lameenc
  {v.get('lameenc', '-')} (MP3 encoding), the operation's `run` called in the benchmark's
  process (no process start); ffmpeg CLI {v['ffmpeg_cli']} (Debian), timed from its start
  to its exit.
- {s['warmup']} warm-up and {s['rounds']} measured rounds, the two alternating which goes
  first; medians. Mend/ffmpeg = ffmpeg's wall time / Mend's (above 1: Mend is faster).
  CPU: the benchmark process's threads plus the ffmpeg child's. others: how many cores
  other processes on the shared machine kept busy meanwhile (median, Mend's / ffmpeg's runs).
- thumbnail: `ffmpeg -ss 30 -i clip.mp4 -frames:v 1 out.jpg` vs `video_thumbnail.run`
  (timestamp 30, full size, JPEG q85). The clip (1920x1080, 30 fps, libx264 CRF 23,
  keyframe every 250 frames) numbers its frames with a code of squares, read back from
  each output: frame {AT_SECONDS * media_inputs.CLIP_FPS} is the one shown at 30 s.
- audio: `ffmpeg -i in.wav -b:a 128k out.mp3` vs `audio_convert.run` (format mp3,
  bitrate 128k), a 3-minute 44.1 kHz 16-bit stereo WAV. LAME writes its version into
  frames' unused bits (lameenc's LAME says 4.0, the CLI's 3.100), so a frame may differ
  where the decoded samples do not.

{report.markdown_table(header, rows)}
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench media", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="measured rounds (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    p.add_argument("--tasks", default="thumbnail,audio", help="comma separated")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/media.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if shutil.which("ffmpeg") is None:
        print("bench media needs the ffmpeg CLI: scripts/ensure-packages.sh ffmpeg",
              file=sys.stderr)
        return 2
    tasks = {"thumbnail": thumbnail, "audio": audio}
    names = report.selected(args.tasks, list(tasks), "tasks")
    if names is None:
        return 2
    loadavg = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="mend-bench-media-") as tmp:
        for name in names:
            print(f"  {name}: {args.rounds} rounds", flush=True)
            results[name] = r = tasks[name](args.rounds, args.warmup, Path(tmp))
            print(f"  {name}: Mend {r['mend']['wall_ms']:.0f} ms, ffmpeg "
                  f"{r['ffmpeg']['wall_ms']:.0f} ms -> {r['ratio_wall']:.2f}x", flush=True)
    header, rows = tables(results)
    print()
    print(report.text_table(header, rows))
    data = report.run_data(NAME, argv, args, loadavg, versions(), results)
    report.save(NAME, data, markdown(data), args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
