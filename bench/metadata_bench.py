"""What the export's metadata costs: checksumming every file for Croissant, and writing the card,
``licenses.csv`` and ``croissant.json`` of a small demo export.

    python bench/metadata_bench.py             # 512 MB checksum file, demo export of subset_21 + subset_43
    python bench/metadata_bench.py --mb 64     # quicker

The checksum file is random bytes written once to a temporary folder (read back from the page cache,
so the figure is the hashing rate, not the disk's). Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medmat_builder.publish.croissant import FileDigest, export_files  # noqa: E402
from timing import best  # noqa: E402  (bench/timing.py)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=512, help="size of the file checksummed (MB)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    from medmat_builder.build import BuildSettings, build
    from medmat_builder.demo import MINIMAL_PER_LABEL, write_demo_sources
    from medmat_builder.publish.metadata import write_export_metadata
    from medmat_builder.registry import load_registry
    from medmat_builder.report import BuildReport

    rows = []
    with tempfile.TemporaryDirectory(prefix="medmat-metadata-bench-") as tmp:
        big = Path(tmp) / "big.bin"
        with open(big, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        secs = best(lambda: FileDigest.of_file(big), args.repeat)
        rows.append((f"sha256 of a {args.mb} MB file: s", f"{secs:.3f}"))
        rows.append(("sha256 rate: MB/s", f"{args.mb / secs:.0f}"))

        registry, names = load_registry(), ["subset_21", "subset_43"]
        keys = sorted({k for n in names for k in registry.subset(n).sources})
        write_demo_sources(Path(tmp) / "raw", registry, keys=keys, per_label=MINIMAL_PER_LABEL)
        out = Path(tmp) / "medmat"
        build(names, Path(tmp) / "raw", out, BuildSettings(num_proc=1), registry=registry)
        report = BuildReport.read(out)
        size = sum(d.size for d in export_files(out, names).values())
        rows.append((f"demo export ({len(names)} configs): files MB", f"{size / 1e6:.2f}"))
        rows.append(("checksum every file: s", f"{best(lambda: export_files(out, names), args.repeat):.3f}"))
        rows.append(("card + licenses.csv + croissant.json: s",
                     f"{best(lambda: write_export_metadata(out, registry, report), args.repeat):.3f}"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for measure, value in rows:
        print(f"{measure:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
