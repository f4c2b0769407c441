"""The trainer's leakage guard on 10,000 training rows: decoding every image (before) beside reading rows (after).

Run from the repository root::

    python bench/leakage_guard_bench.py                    # 10,000 train rows, 1,000 test rows, 512 px JPEG
    python bench/leakage_guard_bench.py --rows 500 --test-rows 100 --side 128   # a quick look

One run, the same data for every line. A synthetic export is written first (smooth grey scans with
noise, JPEG quality 90, as most medical archives ship them; ``--leaks`` training rows are byte copies
of test rows under new ids). The training set is read as training reads it (``medmat_builder.train``'s
training form, shuffled), then each guard runs on it against the target's test split:

* **before (decode)**: the guard as it was until this change: every training and test image decoded
  with ``medmat_builder.images.load_image_bytes`` for its pixel hash, perceptual hash and thumbnail;
  a training row is dropped on the same id, the same pixels, or a near duplicate of a test image
  (``medmat_builder.images.DuplicateIndex``);
* **after (stored bytes)**: :func:`medmat_builder.train.leakage.drop_target_test_records` on an
  export without a per-row image hash: id, xxh3-128 of the stored bytes (no decode), subject ``group``;
* **after (image_hash column)**: the same guard when the build writes ``image_hash`` on every row:
  only columns are read.

Columns: rows checked, seconds (best of ``--repeat``), rows per second, time relative to before,
rows dropped. Seconds exclude writing the export and loading it (the same for every line).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def scan(rng: np.random.Generator, side: int) -> bytes:
    """A smooth grey scan-like image with noise, as JPEG."""
    from PIL import Image

    y, x = np.mgrid[0:side, 0:side] / side
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.45)
    body = np.clip(1.2 - np.hypot(x - cx, y - cy) / r, 0, 1) * rng.uniform(120, 220)
    pixels = body + 20 * np.sin(x * rng.uniform(5, 25)) + rng.normal(0, 12, (side, side))
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_export(root: Path, rows: int, test_rows: int, leaks: int, side: int) -> Path:
    """``root`` as a two-config export: ``subset_25`` (train) and ``subset_28`` (the target's test)."""
    from datasets import Dataset, Image

    rng = np.random.default_rng(0)
    test = [scan(rng, side) for _ in range(test_rows)]
    train = [scan(rng, side) for _ in range(rows - leaks)] + test[:leaks]
    question = "Which finding does this image show?\nA. normal\nB. abnormal\nAnswer with the option's letter."
    lines = ["---", "configs:"]
    for config, split, images in (("subset_25", "train", train), ("subset_28", "test", test)):
        ds = Dataset.from_dict({
            "id": [f"{config}-{split}-{i:06d}" for i in range(len(images))],
            "image": [{"bytes": b, "path": None} for b in images],
            "question": [question] * len(images), "answer": ["A"] * len(images),
            "group": [f"{config}{split}{i:010d}" for i in range(len(images))],
        }).cast_column("image", Image())
        (root / config).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
        lines += [f"- config_name: {config}", "  data_files:", f"  - split: {split}",
                  f"    path: {config}/{split}-*.parquet"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return root


def guard_before(train, test) -> int:
    """The guard until this change: decode every image; same id, same pixels or a near duplicate."""
    from datasets import Image

    from medmat_builder.images import DuplicateIndex
    from medmat_builder.images import ImageError, load_image_bytes

    def keys(ds):
        out = []
        for i, item in enumerate(ds.cast_column("image", Image(decode=False))["image"]):
            try:
                img = load_image_bytes(item["bytes"] or b"", name=f"record {i}")
                out.append((img.pixel_hash, img.phash, img.thumbnail, min(img.width, img.height)))
            except ImageError:
                out.append((None, 0, None, 0))
        return out

    test_keys = keys(test)
    test_ids, index = set(test["id"]), DuplicateIndex()
    for px, ph, thumb, side in test_keys:
        if thumb is not None:
            index.add(px, int(ph), thumb, side)
    pixels = {k[0] for k in test_keys}
    dropped = 0
    for rid, (px, ph, thumb, side) in zip(train["id"], keys(train), strict=True):
        if rid in test_ids or px in pixels or (thumb is not None and index.check(px, int(ph), thumb, side)):
            dropped += 1
    return dropped


def guard_after(train, test) -> int:
    from medmat_builder.train.leakage import drop_target_test_records

    return drop_target_test_records(train, test, "subset_28")[1].total


def best(fn, repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000, help="training rows checked (default 10,000)")
    ap.add_argument("--test-rows", type=int, default=1_000, help="rows of the target's test split (default 1,000)")
    ap.add_argument("--leaks", type=int, default=50, help="training rows that copy a test image (default 50)")
    ap.add_argument("--side", type=int, default=512, help="image side in pixels (default 512)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per guard; the best is printed (default 1)")
    args = ap.parse_args(argv)

    from medmat_builder.train.data import load_split, to_training_form
    from medmat_builder.train.leakage import stored_image_hashes

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MEDMAT_CACHE", str(Path(tmp) / "cache"))
        root = write_export(Path(tmp) / "export", args.rows, args.test_rows, args.leaks, args.side)
        mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e6
        train = to_training_form(load_split(str(root), "subset_25", "train"), "subset_25").shuffle(seed=0)
        test = load_split(str(root), "subset_28", "test")
        # what a build that writes image_hash gives (its values made here, before timing)
        with_hash = [train.remove_columns("image_hash").add_column("image_hash", stored_image_hashes(train)),
                     test.add_column("image_hash", stored_image_hashes(test))]
        lines = [("before (decode)", *best(lambda: guard_before(train, test), args.repeat)),
                 ("after (stored bytes)", *best(lambda: guard_after(train, test), args.repeat)),
                 ("after (image_hash column)", *best(lambda: guard_after(*with_hash), args.repeat))]
    print(f"leakage guard: {args.rows:,} training rows against {args.test_rows:,} test rows, {args.side} px JPEG, "
          f"{mb:,.0f} MB of parquet, {args.leaks} planted byte copies; {os.cpu_count()} CPUs")
    print("| guard | rows | seconds | rows/s | time vs before | dropped |")
    print("|---|---:|---:|---:|---:|---:|")
    base = lines[0][1]
    for name, seconds, dropped in lines:
        print(f"| {name} | {args.rows:,} | {seconds:.2f} | {args.rows / seconds:,.0f} | "
              f"{seconds / base:.3f}x | {dropped} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
