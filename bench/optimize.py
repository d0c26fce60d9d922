"""`python -m bench optimize`: image/optimize to WebP and AVIF per core, Mend vs libvips.

The 12 MP generated photo of `bench resize` (4000x3000 JPEG q90, bench/.data/) is
re-encoded at full size, metadata stripped, by Mend's `imaging_optimize.optimize` (Pillow:
libwebp method 4; libavif with aom at speed 6) and by pyvips (`webpsave` effort 4, the
same method; `heifsave` AV1 at effort 3, libvips' name for aom speed 6), in this process,
alternating, libvips with one thread (VIPS_CONCURRENCY=1, operation cache off).

Sizes: Mend encodes at its quality (WebP 80 as asked; AVIF at its default when unset);
libvips starts at the same Q and, if its output is more than 5 % off Mend's in size, the
Q whose output size is closest to Mend's is searched for (bisection) and used: the
record says which Q each side used. Per core: 1 / CPU seconds per image (all threads)."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from typing import Any

from PIL import Image

from bench import contest, report
from bench.resize import psnr, source

NAME = "optimize"
GOAL_RATIO = 0.8
SIZE_TOLERANCE = 0.05
# format: (quality Mend is asked for, None = its default; libvips saver and options)
TASKS: dict[str, tuple[int | None, str, dict[str, Any]]] = {
    "webp": (80, "webpsave_buffer", {"effort": 4}),
    "avif": (None, "heifsave_buffer", {"compression": "av1", "effort": 3}),
}


def mend_encoder(data: bytes, fmt: str, quality: int | None) -> Callable[[], bytes]:
    from mend_core.imaging_optimize import optimize

    def run() -> bytes:
        return optimize(data, fmt=fmt, quality=quality, lossless=False, max_size=(0, 0),
                        dest_key=f"out.{fmt}", max_pixels=100_000_000).data

    return run


def vips_encoder(data: bytes, saver: str, q: int, options: dict[str, Any]) -> Callable[[], bytes]:
    import pyvips

    def run() -> bytes:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential")
        out: bytes = getattr(image, saver)(Q=q, keep=0, **options)  # keep=0: no metadata
        return out

    return run


def matching_q(data: bytes, saver: str, options: dict[str, Any], start: int,
               target: int) -> tuple[int, int]:
    """libvips' Q giving a size within SIZE_TOLERANCE of `target` (start's if it does),
    else the closest found by bisection; returns (Q, size)."""
    sizes: dict[int, int] = {}

    def size(q: int) -> int:
        if q not in sizes:
            sizes[q] = len(vips_encoder(data, saver, q, options)())
        return sizes[q]

    if abs(size(start) - target) <= SIZE_TOLERANCE * target:
        return start, size(start)
    low, high = 1, 100
    while low < high:
        mid = (low + high) // 2
        if size(mid) < target:
            low = mid + 1
        else:
            high = mid
    best = min((q for q in (low - 1, low) if 1 <= q <= 100), key=lambda q: abs(size(q) - target))
    return best, size(best)


def bench_format(fmt: str, rounds: int, warmup: int) -> dict[str, Any]:
    from mend_core import imaging_optimize

    data = source("12MP")
    quality, saver, options = TASKS[fmt]
    mend_q = quality or imaging_optimize.default_quality(fmt)
    mend = mend_encoder(data, fmt, quality)
    target = len(mend())
    vips_q, vips_size = matching_q(data, saver, options, mend_q, target)
    runs = contest.alternate({"mend": mend, "libvips": vips_encoder(data, saver, vips_q, options)},
                             rounds, warmup)
    with Image.open(io.BytesIO(data)) as img:
        ref = img.convert("RGB")
    result: dict[str, Any] = {"source_bytes": len(data), "size_tolerance": SIZE_TOLERANCE}
    for name, q in (("mend", mend_q), ("libvips", vips_q)):
        out: bytes = runs[name].output
        summary = runs[name].summary()
        result[name] = {**summary, "quality": q, "output_bytes": len(out),
                        "images_per_s_per_core": round(1000 / summary["cpu_ms"], 3),
                        "psnr_db": round(psnr(ref, Image.open(io.BytesIO(out))), 2)}
    m, v = result["mend"], result["libvips"]
    result["size_ratio"] = round(m["output_bytes"] / v["output_bytes"], 3)
    result["ratio_cpu"] = contest.ratio(v["cpu_ms"], m["cpu_ms"])
    result["ratio_wall"] = contest.ratio(v["wall_ms"], m["wall_ms"])
    result["met"] = bool(result["ratio_cpu"] >= GOAL_RATIO
                         and abs(result["size_ratio"] - 1) <= SIZE_TOLERANCE)
    assert vips_size == v["output_bytes"]
    return result


SCAN = (("webp", 80), ("avif", 50), ("avif", 63), ("avif", 80))


def quality_scan() -> list[dict[str, Any]]:
    """Output size and PSNR at a few qualities, Mend's and libvips' (once, untimed): how
    the two AVIF encoders' quality scales compare, and AVIF's against WebP's."""
    data = source("12MP")
    with Image.open(io.BytesIO(data)) as img:
        ref = img.convert("RGB")
    rows = []
    for fmt, q in SCAN:
        _, saver, options = TASKS[fmt]
        mend = mend_encoder(data, fmt, q)()
        vips = vips_encoder(data, saver, q, options)()
        rows.append({"format": fmt, "quality": q, "mend_bytes": len(mend),
                     "mend_psnr_db": round(psnr(ref, Image.open(io.BytesIO(mend))), 2),
                     "libvips_bytes": len(vips),
                     "libvips_psnr_db": round(psnr(ref, Image.open(io.BytesIO(vips))), 2)})
    return rows


def scan_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["format", "quality", "Mend bytes", "Mend PSNR dB", "libvips bytes",
              "libvips PSNR dB", "Mend/libvips bytes"]
    return header, [[r["format"].upper(), str(r["quality"]), f"{r['mend_bytes']:,}",
                     f"{r['mend_psnr_db']:.2f}", f"{r['libvips_bytes']:,}",
                     f"{r['libvips_psnr_db']:.2f}", f"{r['mend_bytes'] / r['libvips_bytes']:.3f}"]
                    for r in rows]


def tables(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["output", "implementation", "quality", "bytes", "PSNR dB", "median ms (CPU)",
              "median ms (wall)", "images/s per core", "Mend/libvips (CPU)", "size Mend/libvips",
              "goal met", "others (cores)"]
    rows = []
    for fmt, r in results.items():
        for name, label in (("mend", "Mend (Pillow)"), ("libvips", "libvips")):
            x, mend = r[name], name == "mend"
            rows.append([fmt.upper(), label, str(x["quality"]), f"{x['output_bytes']:,}",
                         f"{x['psnr_db']:.2f}", f"{x['cpu_ms']:,.0f}", f"{x['wall_ms']:,.0f}",
                         f"{x['images_per_s_per_core']:.2f}",
                         f"{r['ratio_cpu']:.2f}x" if mend else "",
                         f"{r['size_ratio']:.3f}" if mend else "",
                         ("yes" if r["met"] else "NO") if mend else "",
                         f"{x['others_cores']:.1f}"])
    return header, rows


def versions() -> dict[str, str]:
    import PIL.features
    import pyvips

    return {
        "pillow": Image.__version__,
        "libwebp": str(PIL.features.version("webp")),
        "libavif": str(PIL.features.version("avif")),
        "pyvips": pyvips.__version__,
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
    }


def markdown(data: dict[str, Any]) -> str:
    header, rows = tables(data["results"])
    m, v, s = data["machine"], data["versions"], data["settings"]
    return f"""# Optimize benchmark: Mend (Pillow) vs libvips, WebP and AVIF

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; load average at start {data['loadavg']}
- Pillow {v['pillow']} (libwebp {v['libwebp']}, libavif {v['libavif']}), pyvips {v['pyvips']}
  with libvips {v['libvips']} (the pyvips-binary wheel)
- task: the 12 MP generated photo (4000x3000 JPEG q90) re-encoded at full size without
  metadata: Mend's `imaging_optimize.optimize` vs pyvips `new_from_buffer(...,
  access="sequential")` then `webpsave_buffer(Q, effort=4, keep=0)` /
  `heifsave_buffer(Q, compression="av1", effort=3, keep=0)` (effort 3 is aom speed 6,
  Mend's); libvips one thread (VIPS_CONCURRENCY=1, cache off), Pillow's AVIF encoder its
  default threads; {s['warmup']} warm-up and {s['rounds']} measured rounds, alternating;
  medians.
- images/s per core = 1 / CPU seconds (all threads) per image; Mend/libvips is the ratio.
  Sizes: libvips' Q is the one whose output is within {100 * SIZE_TOLERANCE:g} % of Mend's
  (searched when the same Q is not). PSNR against the source's decode. others: how many
  cores other processes on the shared machine kept busy meanwhile (median).
  Goal: Mend/libvips >= {GOAL_RATIO:g} at output size within {100 * SIZE_TOLERANCE:g} %.

{report.markdown_table(header, rows)}

Quality scales (one encode each, same source; `--no-scan` skips it):

{report.markdown_table(*scan_table(scan)) if (scan := data.get("quality_scan")) else "not run"}
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench optimize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=9, help="measured rounds (default 9)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    p.add_argument("--formats", default=",".join(TASKS), help="comma separated: webp,avif")
    p.add_argument("--no-scan", action="store_true",
                   help="skip the size/PSNR scan over qualities (WebP 80, AVIF 50/63/80)")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/optimize.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    os.environ["VIPS_CONCURRENCY"] = "1"  # read when libvips starts (at import)
    try:
        import pyvips
    except ImportError:
        print("bench optimize needs pyvips: .venv/bin/pip install -r bench/requirements.txt",
              file=sys.stderr)
        return 2
    pyvips.cache_set_max(0)
    formats = report.selected(args.formats, list(TASKS), "formats")
    if formats is None:
        return 2
    loadavg = os.getloadavg()
    results = {}
    for fmt in formats:
        print(f"  {fmt}: {args.rounds} rounds", flush=True)
        results[fmt] = r = bench_format(fmt, args.rounds, args.warmup)
        print(f"  {fmt}: Mend {r['mend']['cpu_ms']:.0f} ms CPU ({r['mend']['output_bytes']:,} B),"
              f" libvips {r['libvips']['cpu_ms']:.0f} ms CPU ({r['libvips']['output_bytes']:,} B)"
              f" -> {r['ratio_cpu']:.2f}x", flush=True)
    header, rows = tables(results)
    print()
    print(report.text_table(header, rows))
    scan = [] if args.no_scan else quality_scan()
    if scan:
        print()
        print(report.text_table(*scan_table(scan)))
    data = report.run_data(NAME, argv, args, loadavg, versions(), results, quality_scan=scan)
    report.save(NAME, data, markdown(data), args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
