"""`python -m bench resize`: resize throughput per core, Mend's resize_image vs libvips.

Generated photographic JPEGs (mend_devkit.sample.photo, 12 MP and 24 MP, quality 90,
cached in bench/.data/) are resized to fit 800x600 and written as JPEG quality 85 by
Mend's `resize_image` (Pillow) and by pyvips' `Image.thumbnail_buffer(data, 800,
height=600).write_to_buffer('.jpg', Q=85)`, in the same process, alternating, one
thread each (VIPS_CONCURRENCY=1, libvips' operation cache off).

Throughput per core is 1 / (CPU seconds per image): the machine is shared, so CPU time
(all threads of the process) is steadier than wall time, which is shown too. Quality is
the PSNR of each decoded output against a reference: the full-size decode downscaled in
one Lanczos pass (no DCT scaling, no reducing step) to the same size.

Needs pyvips: `.venv/bin/pip install -r bench/requirements.txt` (`make bench` does it)."""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

from bench import report

NAME = "resize"
DATA = Path(__file__).parent / ".data"
SIZES = {"12MP": (4000, 3000), "24MP": (6000, 4000)}
BOX = (800, 600)
QUALITY = 85
GOAL_RATIO = 1.0
GOAL_PSNR_DB = 0.5  # Mend's PSNR may be at most this much below libvips'


def source(label: str) -> bytes:
    """The cached q90 JPEG for a size label, generated on first use (~10-20 s each)."""
    w, h = SIZES[label]
    path = DATA / f"photo-{w}x{h}-q90.jpg"
    if not path.exists():
        from mend_devkit.sample import photo

        print(f"  generating {path.name} (once) ...", flush=True)
        DATA.mkdir(exist_ok=True)
        buf = io.BytesIO()
        photo(w, h, seed=w).save(buf, "JPEG", quality=90)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.rename(path)
    return path.read_bytes()


def mend_resize(data: bytes) -> bytes:
    from mend_core.imaging import resize_image

    return resize_image(
        data, width=BOX[0], height=BOX[1], quality=QUALITY, dest_key="out.jpg",
        max_pixels=100_000_000,
    ).data


def vips_resize(data: bytes) -> bytes:
    import pyvips

    out: bytes = pyvips.Image.thumbnail_buffer(data, BOX[0], height=BOX[1]).write_to_buffer(
        ".jpg", Q=QUALITY
    )
    return out


IMPLS: dict[str, Callable[[bytes], bytes]] = {"mend": mend_resize, "libvips": vips_resize}
LABELS = {"mend": "Mend (Pillow)", "libvips": "libvips thumbnail"}


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB over the RGB channels of two same-size images (from the histogram of
    absolute differences: exact, and no numpy needed)."""
    hist = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).histogram()
    squared = sum(count * (i % 256) ** 2 for i, count in enumerate(hist))
    mse = squared / (a.width * a.height * 3)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        full = img.convert("RGB")
    return full.resize(size, Image.Resampling.LANCZOS, reducing_gap=None)


def time_one(fn: Callable[[bytes], bytes], data: bytes) -> tuple[float, float, bytes]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(data)
    return time.perf_counter() - t0, time.process_time() - c0, out


def bench_size(label: str, runs: int, warmup: int) -> dict[str, Any]:
    data = source(label)
    outputs: dict[str, bytes] = {}
    for name, fn in IMPLS.items():
        for _ in range(warmup):
            outputs[name] = fn(data)
    wall: dict[str, list[float]] = {n: [] for n in IMPLS}
    cpu: dict[str, list[float]] = {n: [] for n in IMPLS}
    for i in range(runs):
        order = list(IMPLS) if i % 2 == 0 else list(reversed(IMPLS))
        for name in order:
            w, c, _ = time_one(IMPLS[name], data)
            wall[name].append(w)
            cpu[name].append(c)
    result: dict[str, Any] = {"source_bytes": len(data), "source_size": SIZES[label]}
    refs: dict[tuple[int, int], Image.Image] = {}
    decoded = {n: Image.open(io.BytesIO(outputs[n])) for n in IMPLS}
    for name in IMPLS:
        img = decoded[name]
        if img.size not in refs:
            refs[img.size] = reference(data, img.size)
        cpu_med = report.median(cpu[name])
        result[name] = {
            "wall_ms": round(1000 * report.median(wall[name]), 2),
            "cpu_ms": round(1000 * cpu_med, 2),
            "images_per_s_per_core": round(1 / cpu_med, 2),
            "output_size": list(img.size),
            "output_bytes": len(outputs[name]),
            "psnr_db": round(psnr(img, refs[img.size]), 2),
            "wall_runs_ms": [round(1000 * x, 2) for x in wall[name]],
            "cpu_runs_ms": [round(1000 * x, 2) for x in cpu[name]],
        }
    m, v = result["mend"], result["libvips"]
    result["ratio_cpu"] = round(v["cpu_ms"] / m["cpu_ms"], 3)
    result["ratio_wall"] = round(v["wall_ms"] / m["wall_ms"], 3)
    if decoded["mend"].size == decoded["libvips"].size:
        result["psnr_mend_vs_libvips_db"] = round(psnr(decoded["mend"], decoded["libvips"]), 2)
    result["met"] = bool(
        result["ratio_cpu"] >= GOAL_RATIO and m["psnr_db"] >= v["psnr_db"] - GOAL_PSNR_DB
    )
    return result


def tables(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["image", "implementation", "output", "median ms (CPU)", "median ms (wall)",
              "images/s per core", "PSNR dB vs ref", "Mend/libvips", "goal met"]
    rows = []
    for label, r in results.items():
        for name in IMPLS:
            x = r[name]
            mend = name == "mend"
            rows.append([
                label, LABELS[name], "x".join(map(str, x["output_size"])),
                f"{x['cpu_ms']:.1f}", f"{x['wall_ms']:.1f}",
                f"{x['images_per_s_per_core']:.1f}", f"{x['psnr_db']:.2f}",
                f"{r['ratio_cpu']:.2f}x" if mend else "",
                ("yes" if r["met"] else "NO") if mend else "",
            ])
    return header, rows


def versions() -> dict[str, str]:
    import PIL.features
    import pyvips

    return {
        "pillow": Image.__version__,
        "libjpeg_turbo": str(PIL.features.version("libjpeg_turbo")),
        "pyvips": pyvips.__version__,
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
    }


def markdown(data: dict[str, Any]) -> str:
    header, rows = tables(data["results"])
    m, v, s = data["machine"], data["versions"], data["settings"]
    return f"""# Resize benchmark: Mend (Pillow) vs libvips

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; load average at start {data['loadavg']}
- Python {m['python']}, Pillow {v['pillow']} (libjpeg-turbo {v['libjpeg_turbo']}),
  pyvips {v['pyvips']} with libvips {v['libvips']}
- task: fit inside {BOX[0]}x{BOX[1]}, JPEG q{QUALITY}, from generated q90 photos; one thread
  each (VIPS_CONCURRENCY=1, libvips operation cache off); {s['warmup']} warm-up and
  {s['runs']} measured runs per implementation and image, alternating order; medians.
- images/s per core = 1 / CPU seconds per image; Mend/libvips is the ratio of those
  (CPU time is what a busy worker pays; wall time, shown too, includes other load on the
  shared machine).
- PSNR: each decoded output against the full-size decode downscaled by one Lanczos pass to
  the same size. Goal: Mend/libvips >= {GOAL_RATIO:g} with PSNR at most {GOAL_PSNR_DB:g} dB
  below libvips'.

{report.markdown_table(header, rows)}

Mend vs libvips outputs directly: {", ".join(
    f"{k} {r.get('psnr_mend_vs_libvips_db', 'n/a')} dB" for k, r in data['results'].items())}.
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench resize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=15, help="measured runs per image (default 15)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up runs (default 2)")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma separated: 12MP,24MP")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/resize.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    # libvips reads it when it starts (at import): one worker thread, like Pillow.
    os.environ["VIPS_CONCURRENCY"] = "1"
    try:
        import pyvips
    except ImportError:
        print("bench resize needs pyvips: .venv/bin/pip install -r bench/requirements.txt",
              file=sys.stderr)
        return 2
    pyvips.cache_set_max(0)  # no cached results of an identical earlier call
    labels = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if unknown := [s for s in labels if s not in SIZES]:
        print(f"unknown sizes {unknown}; known: {', '.join(SIZES)}", file=sys.stderr)
        return 2
    loadavg = os.getloadavg()
    results = {}
    for label in labels:
        print(f"  {label}: {args.runs} runs per implementation", flush=True)
        results[label] = r = bench_size(label, args.runs, args.warmup)
        print(f"  {label}: Mend {r['mend']['cpu_ms']:.1f} ms CPU, libvips "
              f"{r['libvips']['cpu_ms']:.1f} ms CPU -> {r['ratio_cpu']:.2f}x; PSNR "
              f"{r['mend']['psnr_db']:.2f} vs {r['libvips']['psnr_db']:.2f} dB", flush=True)
    header, rows = tables(results)
    print()
    print(report.text_table(header, rows))
    data = {
        "benchmark": NAME,
        "command": " ".join(["python -m bench resize", *argv]),
        "date": report.now_utc(),
        "machine": report.machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
        "versions": versions(),
        "settings": vars(args),
        "results": results,
    }
    if not args.no_record:
        json_path, md_path = report.record(NAME, data, markdown(data))
        print(f"\nrecorded {md_path} and {json_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
