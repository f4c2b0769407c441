"""Benchmark the visual build report (``OUT/report/``): its size and the time it adds to a build.

Run from the repository root::

    python bench/report_bench.py            # the full offline demo (every config of sources.yaml)
    python bench/report_bench.py --quick    # two configs of the minimal demo: seconds

The synthetic raw sources are written once (``--cache``, default ``/tmp/medmat-report-bench``). The same
build then runs side by side in one run, each in its own subprocess (wall time of ``build()`` only,
after imports): without the report (``write_visual_report`` replaced by a no-op) and with it, ``--repeats``
times each, alternating; the table shows the median of each, the difference, the report's size (all
files under ``OUT/report/``), its largest page and its thumbnails, and the time of ``medmat report OUT``
alone (re-rendering the report of the finished export).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's medmat_builder, installed or not
QUICK_CONFIGS = ("subset_01", "subset_40")


def _one_build(raw: Path, out: Path, configs: list[str], report: bool) -> dict:
    """Run in a subprocess: one build into ``out``; its wall time (and the report's render time alone)."""
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.build import export
    from medmat_builder.registry import load_registry

    registry = load_registry()
    if not report:
        export.write_visual_report = lambda *args, **kwargs: None
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    build(configs or None, raw, out, BuildSettings(num_proc=1), registry=registry)
    result = {"build_s": time.perf_counter() - start, "build_cpu": time.process_time() - cpu}
    if report:
        from medmat_builder.publish.visual import render_visual_report
        from medmat_builder.report import BuildReport

        start, cpu = time.perf_counter(), time.process_time()
        render_visual_report(out, registry, BuildReport.read(out), raw=raw)
        result["render_s"], result["render_cpu"] = time.perf_counter() - start, time.process_time() - cpu
    return result


def _run(raw: Path, out: Path, configs: list[str], report: bool) -> dict:
    cmd = [sys.executable, __file__, "--_child", str(raw), str(out), "1" if report else "0", *configs]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"build failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report_size(out: Path) -> dict:
    pages = sorted((out / "report").iterdir())
    html = [p for p in pages if p.suffix == ".html"]
    biggest = max(html, key=lambda p: p.stat().st_size)
    thumbs = sum(p.read_text(encoding="utf-8").count('src="data:image/') for p in html)
    return {"bytes": sum(p.stat().st_size for p in pages), "pages": len(html), "thumbnails": thumbs,
            "largest": f"{biggest.name} ({biggest.stat().st_size / 1e6:.2f} MB)"}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        raw, out, report, *configs = sys.argv[2:]
        print(json.dumps(_one_build(Path(raw), Path(out), configs, report == "1")))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"minimal demo of {', '.join(QUICK_CONFIGS)} only")
    ap.add_argument("--repeats", type=int, default=1, help="builds of each kind (median shown; default 1)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/medmat-report-bench"))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    from medmat_builder.demo import MINIMAL_PER_LABEL, write_demo_sources
    from medmat_builder.registry import load_registry

    registry = load_registry()
    configs = list(QUICK_CONFIGS) if args.quick else []
    raw = args.cache / ("raw-quick" if args.quick else "raw-full")
    if not (raw / ".done").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        keys = {k for c in configs for k in registry.subset(c).sources} if configs else None
        if args.quick:
            write_demo_sources(raw, registry, keys=keys, per_label=MINIMAL_PER_LABEL)
        else:
            write_demo_sources(raw, registry, keys=keys)
        (raw / ".done").write_text("")
    times: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    renders: list[tuple[float, float]] = []
    for _ in range(max(1, args.repeats)):
        for report in (False, True):
            res = _run(raw, args.cache / f"out-{int(report)}", configs, report)
            times[report].append(res["build_s"])
            cpus[report].append(res["build_cpu"])
            renders += [(res["render_s"], res["render_cpu"])] if report else []
    size = _report_size(args.cache / "out-1")
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    # builds run in pairs (without, with) back to back: the median of the pairs' differences is steadier
    # than the difference of the medians on a shared machine; CPU seconds are steadier still
    added = statistics.median(w - o for o, w in zip(times[False], times[True]))
    added_cpu = statistics.median(w - o for o, w in zip(cpus[False], cpus[True]))
    cpu_without = statistics.median(cpus[False])
    label = "quick demo (2 configs)" if args.quick else f"full demo ({len(registry.subset_names)} configs)"
    rows = [
        ("build without report: wall s", f"{without:.1f}"),
        ("build with report: wall s", f"{with_:.1f}"),
        ("time the report adds: wall s (median of pairs)", f"{added:.1f} ({added / without:+.0%})"),
        ("each build without / with: wall s", " / ".join(", ".join(f"{t:.1f}" for t in times[r]) for r in (False, True))),
        ("build without report: CPU s", f"{cpu_without:.1f}"),
        ("time the report adds: CPU s (median of pairs)", f"{added_cpu:.1f} ({added_cpu / cpu_without:+.0%})"),
        ("medmat report OUT alone: wall s / CPU s",
         f"{statistics.median(r[0] for r in renders):.1f} / {statistics.median(r[1] for r in renders):.1f}"),
        ("report size: MB", f"{size['bytes'] / 1e6:.2f}"),
        ("report pages", str(size["pages"])),
        ("thumbnails", str(size["thumbnails"])),
        ("largest page", size["largest"]),
    ]
    print(f"| measure ({label}, {args.repeats} build(s) each) | value |")
    print("|---|---|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")
    if args.json:
        args.json.write_text(json.dumps([{"measure": m, "value": v} for m, v in rows], indent=1))


if __name__ == "__main__":
    main()
