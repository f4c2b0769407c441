"""Where the wall time of one build goes: its phases, the parquet writers' threads, and the cores kept busy.

Run from the repository root::

    python bench/build_timeline.py                    # N = 20,000, --num-proc = the machine's cores, cold cache
    python bench/build_timeline.py --n 100000 --num-proc 1
    python bench/build_timeline.py --quick            # smoke run (N = 300)

The source is ``build_bench.py``'s synthetic class-folder tree (generated once into ``--data-dir``) and its
one-subset bench registry. One ``medmat build`` runs in this process, with marks added around its steps
(the functions are wrapped, not changed): the scan, the split, the fills, the first and the last decoded
image, each split's early parquet writer (its thread's wall and CPU), the card and ``croissant.json``, the
wait for the visual report. The table gives each mark's start and end in seconds from the start of the
build; the tail (last decoded image to the end), which runs the same with any ``--num-proc``, is what
bounds the speed-up of more processes. Every quarter of a second the share of the machine's cores that was
busy (all processes, from ``/proc/stat``) is sampled: the last rows give its mean over the decoding and
over the tail, and one character per sample (`` `` idle ... ``@`` every core busy).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import build_bench  # noqa: E402  (the bench's tree, registry, eviction and table)

#: ``(module, attribute)`` of each step the table marks (a method as ``Class.method``).
STEPS = (
    ("medmat_builder.build.select", "scan_candidates"),
    ("medmat_builder.build.select", "split_candidates"),
    ("medmat_builder.build.fill", "Fill.run"),
    ("medmat_builder.build.builder", "MedMatBuilder.export_split"),
    ("medmat_builder.build.export", "write_export_metadata"),
    ("medmat_builder.build.export", "swap_configs"),
)
SHADES = " .:-=+*#%@"


class Timeline:
    """Marks ``(start, end, name)`` in seconds from :meth:`begin`, and the busy share of the cores per sample."""

    def __init__(self, period: float = 0.25):
        self.t0 = time.perf_counter()
        self.marks: list[tuple[float, float, str]] = []
        self.busy: list[tuple[float, float]] = []
        self.decoded: list[float] = []
        self.writers: dict[str, tuple[float, float, float]] = {}
        self._period, self._stop = period, threading.Event()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def wrap(self, module: str, attr: str) -> None:
        """Mark every call of ``module.attr`` (a function or ``Class.method``)."""
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def marked(*args, **kwargs):
            start = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.marks.append((start, self.now(), attr))

        setattr(owner, name, marked)

    def watch_build(self) -> None:
        """Mark the decoded images (first and last) and each early parquet writer's thread (wall and CPU)."""
        from medmat_builder.build import loader, parquet

        from medmat_builder.build import export

        take, run, report = loader.Lookahead.take, parquet.EarlySplit._run, export.start_visual_report
        timeline = self

        def timed_take(self, q):
            for res in take(self, q):
                timeline.decoded.append(timeline.now())
                yield res

        def timed_run(self):
            start, cpu = timeline.now(), time.thread_time()
            try:
                run(self)
            finally:
                timeline.writers[self.paths[0].name] = (start, timeline.now(), time.thread_time() - cpu)

        def timed_report(*args, **kwargs):
            future = report(*args, **kwargs)
            result = future.result

            def waited(*a, **k):
                start = timeline.now()
                try:
                    return result(*a, **k)
                finally:
                    timeline.marks.append((start, timeline.now(), "wait for the visual report"))

            future.result = waited
            return future

        loader.Lookahead.take, parquet.EarlySplit._run = timed_take, timed_run
        export.start_visual_report = timed_report

    def sample(self) -> None:
        """Start sampling the busy share of every core (``/proc/stat``) in a thread, until :meth:`stop`."""
        def read() -> tuple[int, int]:
            with open("/proc/stat") as fh:
                values = [int(v) for v in fh.readline().split()[1:]]
            return sum(values), values[3] + values[4]  # idle + iowait

        def loop() -> None:
            last = read()
            while not self._stop.wait(self._period):
                cur = read()
                total, idle = cur[0] - last[0], cur[1] - last[1]
                self.busy.append((self.now(), 1 - idle / max(total, 1)))
                last = cur

        if os.path.exists("/proc/stat"):
            threading.Thread(target=loop, daemon=True, name="timeline-sampler").start()

    def stop(self) -> None:
        self._stop.set()

    def mean_busy(self, start: float, end: float) -> float | None:
        vals = [b for t, b in self.busy if start < t <= end]
        return sum(vals) / len(vals) if vals else None


def rows(tl: Timeline, wall: float, n: int) -> list[build_bench.Row]:
    """The table: each mark, each writer, the tail and the busy cores."""
    Row, cores = build_bench.Row, os.cpu_count() or 1
    N = str(n)
    out = [Row("build wall s", N, f"{wall:.2f}")]
    if tl.decoded:
        out.append(Row("first decoded image / last decoded image: s from the start", N,
                       f"{tl.decoded[0]:.2f} / {tl.decoded[-1]:.2f} ({len(tl.decoded)} images)"))
    calls: dict[str, int] = {}
    for start, end, name in sorted(tl.marks):
        calls[name] = calls.get(name, 0) + 1
        nth = f" (call {calls[name]})" if sum(m[2] == name for m in tl.marks) > 1 else ""
        out.append(Row(f"{name}{nth}: start - end s (duration)", N, f"{start:.2f} - {end:.2f} ({end - start:.2f})"))
    for name, (start, end, cpu) in sorted(tl.writers.items()):
        out.append(Row(f"parquet writer {name}: start - end s (thread CPU s)", N,
                       f"{start:.2f} - {end:.2f} ({cpu:.2f})"))
    if tl.decoded:
        last = tl.decoded[-1]
        out.append(Row("tail: last decoded image to the end, s (share of the wall)", N,
                       f"{wall - last:.2f} ({(wall - last) / wall:.0%})"))
        for label, (a, b) in (("decoding", (tl.decoded[0], last)), ("tail", (last, wall))):
            mean = tl.mean_busy(a, b)
            if mean is not None:
                out.append(Row(f"busy cores during the {label} (of {cores})", N, f"{mean * cores:.2f}"))
    if tl.busy:
        line = "".join(SHADES[min(len(SHADES) - 1, int(b * len(SHADES)))] for _, b in tl.busy)
        out.append(Row("busy share per 0.25 s (' ' idle ... '@' every core)", N, f"`{line}`"))
    return out


def format_table(table: list[build_bench.Row]) -> str:
    """Two columns, measure and value (N is in the header line)."""
    width = max(len(r.measure) for r in table)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    return "\n".join(lines + [f"| {r.measure.ljust(width)} | {r.value} |" for r in table])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000, help="images in the synthetic source (default 20000)")
    p.add_argument("--num-proc", type=int, default=os.cpu_count() or 1,
                   help="the build's processes (default: the machine's cores, as `medmat build`)")
    p.add_argument("--cache", choices=("cold", "warm"), default="cold",
                   help="cold (default): drop the tree's file pages first; warm: read every file first")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medmat-bench",
                   help="where the synthetic images are generated once and reused (outside the repo)")
    p.add_argument("--quick", action="store_true", help="smoke run: N=300")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.n = 300
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw = build_bench.ensure_tree(args.data_dir, args.n, min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="medmat-timeline-") as tmp:
        registry_path = build_bench.write_registry(Path(tmp) / "registry.yaml", 1)
        from medmat_builder.build import BuildSettings, build
        from medmat_builder.registry import load_registry

        registry = load_registry(registry_path)
        if args.cache == "cold":
            build_bench.evict(raw)
        else:
            build_bench.warm_up(raw, [str(p) for p in raw.rglob("*") if p.is_file()])
        tl = Timeline()
        for module, attr in STEPS:
            tl.wrap(module, attr)
        tl.watch_build()
        tl.sample()
        tl.t0 = time.perf_counter()
        build(None, raw, Path(tmp) / "out", BuildSettings(num_proc=args.num_proc), registry=registry)
        wall = tl.now()
        tl.stop()
    table = rows(tl, wall, args.n)
    print(f"One build of N = {args.n:,} raw images, --num-proc {args.num_proc}, {args.cache} page cache.")
    print(format_table(table))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in table], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
