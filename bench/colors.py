"""`python -m bench colors`: image/colors vs colorthief on 24 MP photos.

Mend: the `image_colors` operation's `run` (5 colours; Pillow, computed on a copy of at
most 200x200, the JPEG decoded at 1/8 scale). colorthief 0.2.1: `ColorThief(file)
.get_palette(5, quality=10)`, what its `get_color()` does (pure Python modified median cut,
MMCQ, on every 10th pixel of the full decode, near-white pixels left out); its top colour
is `palette[0]`. In this process, alternating; medians of wall and CPU time.

Images: a landscape with a clear dominant colour (a blue sky over ~60 % of the frame;
bench/.data/) and the generated photo of `bench resize` (gradients and shapes, no
dominant colour). Same top colour: CIE76 ΔE between the two top colours below 10.

How each orders its palette (recorded for every image): colorthief's `palette` is MMCQ's
colour map, whose boxes are ordered by pixel count × box volume in colour space; Mend's
by share of pixels. The record lists each colorthief box's count, volume and product."""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageCms

from bench import contest, media_inputs, report
from bench.resize import source

NAME = "colors"
COUNT = 5
GOAL_RATIO = 10.0
SAME_DELTA_E = 10.0
IMAGES: dict[str, Callable[[], bytes]] = {
    "landscape": lambda: media_inputs.dominant_photo().read_bytes(),
    "synthetic": lambda: source("24MP"),
}
LABELS = {"landscape": "24 MP landscape, blue sky ~60 %",
          "synthetic": "24 MP generated photo, no dominant colour"}


def mend_colors(data: bytes) -> list[dict[str, Any]]:
    from mend_core.operations import OperationLimits
    from mend_core.operations.image_colors import ColorsParams
    from mend_core.operations.image_colors import run as colors_run

    limits = OperationLimits(max_dimension=10_000, max_pixels=100_000_000,
                             max_source_bytes=1 << 30)
    out = colors_run(data, ColorsParams(count=COUNT), "", limits, lambda p, m: None)
    colors: list[dict[str, Any]] = out.details["colors"]
    return colors


def colorthief_palette(data: bytes) -> list[tuple[int, int, int]]:
    from colorthief import ColorThief

    palette: list[tuple[int, int, int]] = ColorThief(io.BytesIO(data)).get_palette(COUNT, 10)
    return palette


def colorthief_boxes(data: bytes) -> list[dict[str, Any]]:
    """colorthief's palette in its order, with each MMCQ box's pixel count (of the pixels
    it sampled), volume (in its 5-bit colour space) and their product (untimed)."""
    import colorthief

    captured: dict[str, Any] = {}
    quantize = colorthief.MMCQ.quantize

    def capture(pixels: list[Any], max_color: int) -> Any:
        captured["pixels"] = len(pixels)
        captured["cmap"] = cmap = quantize(pixels, max_color)
        return cmap

    colorthief.MMCQ.quantize = staticmethod(capture)  # type: ignore[method-assign]
    try:
        colorthief_palette(data)
    finally:
        colorthief.MMCQ.quantize = staticmethod(quantize)  # type: ignore[method-assign]
    boxes = []
    for entry in captured["cmap"].vboxes.contents:
        box = entry["vbox"]
        boxes.append({"rgb": list(entry["color"]), "count": box.count,
                      "share_percent": round(100 * box.count / captured["pixels"], 2),
                      "volume": box.volume, "count_x_volume": box.count * box.volume})
    return boxes


def nearest(data: bytes, palette: list[tuple[int, int, int]]) -> list[dict[str, float]]:
    """For each palette colour: the share of pixels nearer to it than to the others, and
    their mean RGB distance to it, on the 200-pixel copy Mend works on (untimed): how
    much of the image a colour stands for, and how closely."""
    from mend_core.imaging import open_image
    from mend_core.imaging_colors import SAMPLE

    img = open_image(data, 100_000_000, box=(SAMPLE, SAMPLE))
    img.thumbnail((SAMPLE, SAMPLE), Image.Resampling.BOX)
    counts, distances = [0] * len(palette), [0.0] * len(palette)
    pixels = img.convert("RGB").get_flattened_data()
    for pixel in pixels:
        d, i = min((math.dist(pixel, c), i) for i, c in enumerate(palette))  # type: ignore[arg-type]
        counts[i] += 1
        distances[i] += d
    return [{"share_percent": round(100 * n / len(pixels), 1),
             "mean_distance": round(d / n, 1) if n else 0.0}
            for n, d in zip(counts, distances, strict=True)]


_TO_LAB = ImageCms.buildTransformFromOpenProfiles(
    ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")


def delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """CIE76 ΔE between two sRGB colours (through LittleCMS; L in 0-255 is rescaled)."""
    pair = Image.new("RGB", (2, 1))
    pair.putdata([a, b])
    lab = ImageCms.applyTransform(pair, _TO_LAB)
    assert lab is not None
    (l1, a1, b1), (l2, a2, b2) = lab.getpixel((0, 0)), lab.getpixel((1, 0))  # type: ignore[misc]
    return math.dist((l1 * 100 / 255, a1 - 128, b1 - 128),
                     (l2 * 100 / 255, a2 - 128, b2 - 128))


def bench_image(label: str, rounds: int, warmup: int) -> dict[str, Any]:
    data = IMAGES[label]()
    runs = contest.alternate({"mend": lambda: mend_colors(data),
                              "colorthief": lambda: colorthief_palette(data)}, rounds, warmup)
    mend, thief = runs["mend"].output, runs["colorthief"].output
    mend_top = (mend[0]["red"], mend[0]["green"], mend[0]["blue"])
    thief_top = tuple(thief[0])
    boxes = colorthief_boxes(data)
    largest = max(boxes, key=lambda b: b["count"])
    mend_rgb = [(c["red"], c["green"], c["blue"]) for c in mend]
    result: dict[str, Any] = {
        "source_bytes": len(data),
        "mend": {**runs["mend"].summary(), "palette": mend,
                 "nearest": nearest(data, mend_rgb)},
        "colorthief": {**runs["colorthief"].summary(), "palette": [list(c) for c in thief],
                       "boxes": boxes, "nearest": nearest(data, [tuple(c) for c in thief])},
        "top_delta_e": round(delta_e(mend_top, thief_top), 1),  # type: ignore[arg-type]
        "delta_e_mend_top_vs_colorthief_largest_box": round(
            delta_e(mend_top, tuple(largest["rgb"])), 1),  # type: ignore[arg-type]
    }
    result["same_top"] = result["top_delta_e"] < SAME_DELTA_E
    result["colorthief_top_is_largest_box"] = boxes[0] is largest
    result["ratio_wall"] = contest.ratio(result["colorthief"]["wall_ms"], result["mend"]["wall_ms"])
    result["ratio_cpu"] = contest.ratio(result["colorthief"]["cpu_ms"], result["mend"]["cpu_ms"])
    result["met"] = bool(result["ratio_wall"] >= GOAL_RATIO and result["same_top"])
    return result


def _hex(rgb: Any) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def tables(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["image", "Mend ms (wall / CPU)", "colorthief ms (wall / CPU)", "Mend/colorthief",
              "Mend top (share)", "colorthief top", "ΔE", "goal met",
              "others (cores)"]
    rows = []
    for label, r in results.items():
        m, c = r["mend"], r["colorthief"]
        rows.append([LABELS[label], f"{m['wall_ms']:,.0f} / {m['cpu_ms']:,.0f}",
                     f"{c['wall_ms']:,.0f} / {c['cpu_ms']:,.0f}", f"{r['ratio_wall']:,.0f}x",
                     f"{m['palette'][0]['hex']} ({m['palette'][0]['percent']:g} %)",
                     _hex(c["palette"][0]), f"{r['top_delta_e']:g}",
                     "yes" if r["met"] else "NO",
                     f"{m['others_cores']:.1f} / {c['others_cores']:.1f}"])
    return header, rows


NEAREST = "nearest to it: % of pixels / mean RGB distance"


def order_tables(results: dict[str, Any]) -> str:
    out = []
    for label, r in results.items():
        c, m = r["colorthief"], r["mend"]
        rows = [[str(i + 1), _hex(b["rgb"]), f"{b['share_percent']:g}", str(b["volume"]),
                 f"{b['count_x_volume']:,}", f"{n['share_percent']:g} / {n['mean_distance']:g}"]
                for i, (b, n) in enumerate(zip(c["boxes"], c["nearest"], strict=True))]
        mend_rows = [[str(i + 1), x["hex"], f"{x['percent']:g}",
                      f"{n['share_percent']:g} / {n['mean_distance']:g}"]
                     for i, (x, n) in enumerate(zip(m["palette"], m["nearest"], strict=True))]
        out.append(f"{LABELS[label]}: colorthief's palette in its order\n\n"
                   + report.markdown_table(["#", "colour", "share of sampled pixels %",
                                            "box volume", "count x volume", NEAREST], rows)
                   + "\n\nMend's palette in its order\n\n"
                   + report.markdown_table(["#", "colour", "share %", NEAREST], mend_rows)
                   + "\n")
    return "\n".join(out)


def markdown(data: dict[str, Any]) -> str:
    header, rows = tables(data["results"])
    m, s = data["machine"], data["settings"]
    return f"""# Colors benchmark: Mend (Pillow) vs colorthief

- command: `{data['command']}`
- date: {data['date']}
- machine: nproc {m['nproc']}, {m['cpu']}; load average at start {data['loadavg']}
- Pillow {data['versions']['pillow']}, colorthief {data['versions']['colorthief']}
- task: {COUNT} colours of a 24 MP JPEG. Mend: the `image_colors` operation's `run`;
  colorthief: `ColorThief(file).get_palette({COUNT}, quality=10)` (what `get_color()`
  runs; its top colour is `palette[0]`). {s['warmup']} warm-up and {s['rounds']} measured
  rounds, alternating; medians. Mend/colorthief = colorthief's wall time / Mend's.
- same top colour: CIE76 ΔE below {SAME_DELTA_E:g} between the two top colours. Goal:
  Mend/colorthief >= {GOAL_RATIO:g} with the same top colour. others: how many cores other
  processes on the shared machine kept busy meanwhile (median, Mend's / colorthief's runs).

{report.markdown_table(header, rows)}

{order_tables(data['results'])}"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench colors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    p.add_argument("--images", default=",".join(IMAGES), help="comma separated")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not write bench/results/colors.{json,md}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        import colorthief
    except ImportError:
        print("bench colors needs colorthief: .venv/bin/pip install -r bench/requirements.txt",
              file=sys.stderr)
        return 2
    labels = report.selected(args.images, list(IMAGES), "images")
    if labels is None:
        return 2
    loadavg = os.getloadavg()
    results = {}
    for label in labels:
        print(f"  {label}: {args.rounds} rounds", flush=True)
        results[label] = r = bench_image(label, args.rounds, args.warmup)
        print(f"  {label}: Mend {r['mend']['wall_ms']:.0f} ms, colorthief "
              f"{r['colorthief']['wall_ms']:.0f} ms -> {r['ratio_wall']:.0f}x; top ΔE "
              f"{r['top_delta_e']}", flush=True)
    header, rows = tables(results)
    print()
    print(report.text_table(header, rows))
    print()
    print(order_tables(results))
    versions = {"pillow": Image.__version__, "colorthief": colorthief.__version__}
    data = report.run_data(NAME, argv, args, loadavg, versions, results)
    report.save(NAME, data, markdown(data), args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
