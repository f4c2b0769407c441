"""Benchmark the file side of a scan: listing, nested-copy detection and a folders scan, against os.walk.

Run from the repository root::

    python bench/scan_bench.py                 # Kermany-sized trees (5,856 files; 11,712 with the copy)
    python bench/scan_bench.py --scale 10      # ten times the files
    python bench/scan_bench.py --quick         # smoke run

Trees are the Kermany pediatric chest X-ray archive as its Kaggle upload lays it out
(``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/`` with the real per-folder counts times ``--scale``),
once flat and once with the nested second copy ``chest_xray/chest_xray/``; files are small distinct
byte strings (a scan never opens images). Every figure comes from the same run, each the best of
``--repeat`` runs, page cache warm:

* **floor**: ``os.walk`` listing every file (what any reader must do);
* **FileIndex.files**: the listing medmat's layouts read (junk removed, nested copies set aside,
  which stats the candidate copies and hashes a sample of their files);
* **scan**: the ``pediatric_pneumonia`` registry entry's folders layout yielding its records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from timing import best  # noqa: E402  (bench/timing.py)

COUNTS = {("train", "NORMAL"): 1341, ("train", "PNEUMONIA"): 3875, ("val", "NORMAL"): 8,
          ("val", "PNEUMONIA"): 8, ("test", "NORMAL"): 234, ("test", "PNEUMONIA"): 390}


def write_tree(root: Path, scale: float, nested: bool) -> int:
    n = 0
    for prefix in ["chest_xray", "chest_xray/chest_xray"] if nested else ["chest_xray"]:
        for (split, label), count in COUNTS.items():
            folder = root / prefix / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(max(1, int(count * scale))):
                name = f"IM-{i:04d}-0001.jpeg" if label == "NORMAL" else f"person{i}_bacteria_{i}.jpeg"
                (folder / name).write_bytes(f"{split}/{label}/{name}".encode() * 16)
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tiny tree, one repeat")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.scale, args.repeat = 0.01, 1

    from medmat_builder.layouts.file_index import FileIndex
    from medmat_builder.registry import load_registry

    source = load_registry().source("pediatric_pneumonia")
    rows = []
    with tempfile.TemporaryDirectory(prefix="medmat-scan-bench-") as tmp:
        for nested in (False, True):
            root = Path(tmp) / ("nested" if nested else "flat")
            files = write_tree(root, args.scale, nested)
            floor = best(lambda: [f for _, _, fs in os.walk(root) for f in fs], args.repeat)
            index = best(lambda: FileIndex(root, source.layout.read_patterns).files, args.repeat)
            scan = best(lambda: list(source.layout.scan(source, root)), args.repeat)
            records = len(list(source.layout.scan(source, root)))
            rows.append({"tree": "nested copy" if nested else "flat", "files": files, "records": records,
                         "floor s": round(floor, 3), "FileIndex s": round(index, 3), "scan s": round(scan, 3),
                         "FileIndex/floor": round(index / floor, 1) if floor else None,
                         "scan/floor": round(scan / floor, 1) if floor else None})
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
