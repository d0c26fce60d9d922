"""`python -m bench.stack_plain ROOT INDEX COUNT`: one plain Pillow process of `python -m
bench stack`, the baseline the whole stack is measured against.

It imports what it needs, says `ready`, then for every line `SRC OUT N` on stdin resizes
the sources ROOT/SRC/i.jpg with i = INDEX, INDEX + COUNT, ... < N into ROOT/OUT/i.jpg and
says `done`. Each image gets the work a Mend job's executor does for it, called the way
Mend calls Pillow (mend_core.imaging, mend_core.storage: the benchmark checks that the
outputs are byte for byte Mend's): read the file, decode at a reduced DCT scale
(`draft`), resize with Lanczos after an integer reduce (`reducing_gap=3`), encode JPEG
q85 (no optimize, no progressive) without metadata, write a temp file, fsync, rename,
fsync the directory. No job system: no queue, no child process, no status."""

from __future__ import annotations

import io
import os
import sys
import uuid
from pathlib import Path

from PIL import Image

BOX = (800, 600)
QUALITY = 85
REDUCING_GAP = 3.0  # mend_core.imaging._REDUCING_GAP


def resize(data: bytes) -> bytes:
    """Fit inside BOX, keeping the aspect ratio (Mend's fit "inside")."""
    with Image.open(io.BytesIO(data)) as img:
        scale = min(BOX[0] / img.width, BOX[1] / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img.draft(None, size)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below size
        out = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=QUALITY, optimize=False, progressive=False)
    return buf.getvalue()


def put(path: Path, data: bytes) -> None:
    """Atomic write, as Mend's file storage: temp file, fsync, rename, fsync directory."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main(root: Path, index: int, count: int) -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        src, out, n = line.split()
        (root / out).mkdir(parents=True, exist_ok=True)
        for i in range(index, int(n), count):
            put(root / out / f"{i}.jpg", resize((root / src / f"{i}.jpg").read_bytes()))
        print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
