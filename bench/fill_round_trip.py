"""The Hub round trip on the demo: build, publish a text-only payload, fill it back, compare with the build.

Run from the repository root::

    python bench/fill_round_trip.py                   # the whole demo (53 configs)
    python bench/fill_round_trip.py subset_26 subset_28   # a quick look

Steps, each the command a user types (through ``medmat_builder.cli.main``), in a temporary folder
(``--work DIR`` to keep it)::

    medmat build --demo --data-dir raw --out medmat CONFIGS
    medmat publish medmat --repo-id org/medmat --dry-run --save payload
    medmat fill payload --data-dir raw --out filled

Printed: rows, rows with an image in the payload, rows filled, rows not filled (per reason), parquet
files and all files byte-identical to the local build, and the wall seconds of each step.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

from medmat_builder.build.refill import FILL_REPORT_NAME
from medmat_builder.cli import main


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    if code != 0 and argv[0] != "fill":
        raise SystemExit(f"medmat {' '.join(argv)} failed ({code}):\n{out.getvalue()}")
    return time.perf_counter() - start


def round_trip(work: Path, configs: list[str]) -> list[tuple[str, str]]:
    """Run the three steps in ``work``; the table's rows as (measure, value)."""
    raw, local, payload, filled = (str(work / n) for n in ("raw", "medmat", "payload", "filled"))
    t_build = _run(["build", "--demo", "--data-dir", raw, "--out", local, *configs])
    t_publish = _run(["publish", local, "--repo-id", "org/medmat", "--dry-run", "--save", payload])
    t_fill = _run(["fill", payload, "--data-dir", raw, "--out", filled])
    report = json.loads((Path(filled) / FILL_REPORT_NAME).read_text())
    files = sorted(p.relative_to(local) for p in Path(local).rglob("*") if p.is_file() and ".medmat" not in p.parts)
    same = sum((Path(filled) / f).is_file() and (Path(local) / f).read_bytes() == (Path(filled) / f).read_bytes()
               for f in files)
    parquet = [f for f in files if f.suffix == ".parquet"]
    same_parquet = sum((Path(local) / f).read_bytes() == (Path(filled) / f).read_bytes() for f in parquet)
    not_filled = ", ".join(f"{k}: {v}" for k, v in report["not_filled"].items()) or "0"
    return [
        ("configs", str(len(report["configs"]))),
        ("rows", f"{report['rows']:,}"),
        ("rows with an image in the payload", f"{report['had_image']:,}"),
        ("rows filled from raw", f"{report['filled']:,}"),
        ("rows not filled", not_filled),
        ("rows with an image after fill / rows", f"{report['with_image']:,} / {report['rows']:,}"),
        ("parquet files byte-identical to the build", f"{same_parquet} / {len(parquet)}"),
        ("all files byte-identical to the build", f"{same} / {len(files)}"),
        ("card etc. of the filled folder", report["metadata"]),
        ("wall s: medmat build --demo", f"{t_build:.1f}"),
        ("wall s: medmat publish --dry-run --save", f"{t_publish:.1f}"),
        ("wall s: medmat fill", f"{t_fill:.1f}"),
    ]


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="configs (default: all)")
    parser.add_argument("--work", default=None, help="keep the folders here (a new path)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medmat-fill-bench-") as tmp:
        rows = round_trip(Path(args.work or tmp), args.configs)
    width = max(len(m) for m, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for measure, value in rows:
        print(f"| {measure:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
