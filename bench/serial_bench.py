"""Benchmark the serial part of a build before any image is decoded: walk, scan and split, against a baseline.

Run from the repository root::

    python bench/serial_bench.py                               # N = 100,000, this checkout only
    python bench/serial_bench.py --baseline /path/to/old/checkout  # side by side with another checkout
    python bench/serial_bench.py --quick                       # smoke run (N = 300, one repeat)

The tree is ``build_bench.py``'s synthetic class-folder source (generated once into ``--data-dir``), and
the config is its one-subset bench registry. Each phase runs in the main process of a real build, one
after the other, while the other cores idle, so its CPU time bounds the build's wall time:

* **walk**: the inputs fingerprint's listing of the source folder (``folder_listing``);
* **scan**: ``scan_candidates``, every raw record read from paths into a candidate (no image opened);
* **split**: balance keys, seeded order keys and ``split_candidates`` (the seeded 9:1 split by subject);
* **gc**: the part of those three spent in Python's cyclic garbage collector.

Every figure is CPU seconds of a fresh subprocess, the best of ``--repeat`` runs, baseline and this
checkout alternating. A digest of every candidate's id, split and subject shows both gave the same result.

With ``--build`` it times whole builds of the config instead (``--num-proc``, default 2, in a fresh
subprocess each): the wall and the main process's CPU from the start of ``build`` to the first decoded
image (what the serial part costs a build) and to its end, and the CPU of its worker processes; the
sha256 of every exported file shows both checkouts wrote the same bytes::

    python bench/serial_bench.py --build --baseline /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = ("walk", "scan", "split", "gc")


def _measure(repo: Path, n: int, data_dir: Path) -> dict:
    """Run the three phases with ``repo``'s medmat on the N tree; CPU seconds per phase, and a result digest."""
    import gc
    import hashlib

    sys.path[:0] = [str(repo), str(REPO / "bench")]
    import build_bench
    from medmat_builder.build.candidates import seeded_key
    from medmat_builder.build.labels import assign_balance_keys
    from medmat_builder.build.resume import code_version, folder_listing
    from medmat_builder.build.scan import scan_candidates
    from medmat_builder.build.settings import BuildSettings
    from medmat_builder.build.splitting import split_candidates
    from medmat_builder.layouts.file_index import shared_indexes
    from medmat_builder.registry import load_registry
    from medmat_builder.report import ConfigReport

    raw = build_bench.ensure_tree(data_dir, n, min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        registry = load_registry(build_bench.write_registry(Path(tmp) / "registry.yaml", 1))
    subset, source = registry.subset("subset_01"), registry.source(build_bench.SOURCE_KEY)
    settings, root = BuildSettings(), raw / source.folder
    code_version()  # hashes medmat's modules once per process: not part of a walk

    in_gc, started = [0.0], [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            in_gc[0] += time.process_time() - started[0]

    gc.callbacks.append(on_gc)
    with shared_indexes():
        t0 = time.process_time()
        folder_listing(root)
        t1 = time.process_time()
        report = ConfigReport(config=subset.name)
        candidates = scan_candidates(subset, [(source, root)], report)
        t2 = time.process_time()
        assign_balance_keys(candidates, subset)
        for c in candidates:
            c.order = seeded_key(settings.seed, "order", c.id)
        candidates = split_candidates(candidates, settings.seed, settings.test_fraction, subset.kind, report)
        t3 = time.process_time()
    gc.callbacks.remove(on_gc)
    digest = hashlib.sha256()
    for c in sorted(candidates, key=lambda c: c.id):
        digest.update(f"{c.id}\0{c.split}\0{c.group}\n".encode())
    return {"walk": t1 - t0, "scan": t2 - t1, "split": t3 - t2, "gc": in_gc[0],
            "candidates": len(candidates), "digest": digest.hexdigest()[:16]}


BUILD_ROWS = ("first result: wall", "first result: main CPU", "build: wall", "build: main CPU", "workers: CPU")


def _measure_build(repo: Path, n: int, data_dir: Path, num_proc: int) -> dict:
    """One build of the N tree with ``repo``'s medmat: wall and main-process CPU seconds to the first decoded
    image and to the end, the worker processes' CPU, and a digest of every exported file."""
    import hashlib
    import resource

    sys.path[:0] = [str(repo), str(REPO / "bench")]
    import build_bench
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.build import progress
    from medmat_builder.registry import load_registry

    raw = build_bench.ensure_tree(data_dir, n, min(2, os.cpu_count() or 1))
    first: list[tuple[float, float]] = []
    counted = progress.counted  # every decoded result passes here as stage "decode" (Loader.imap, Lookahead.take)

    def timed(items, name):
        for item in counted(items, name):
            if name == "decode" and not first:
                first.append((time.perf_counter(), time.process_time()))
            yield item

    progress.counted = timed
    with tempfile.TemporaryDirectory() as tmp:
        registry = load_registry(build_bench.write_registry(Path(tmp) / "registry.yaml", 1))
        out = Path(tmp) / "out"
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, c0 = time.perf_counter(), time.process_time()
        build(["subset_01"], raw, out, BuildSettings(num_proc=num_proc), registry=registry)
        t1, c1 = time.perf_counter(), time.process_time()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        digest = hashlib.sha256()
        for path in sorted(p for p in out.rglob("*") if p.is_file() and ".medmat" not in p.relative_to(out).parts):
            digest.update(f"{path.relative_to(out).as_posix()}\0".encode() + hashlib.sha256(path.read_bytes()).digest())
    workers = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"first result: wall": first[0][0] - t0, "first result: main CPU": first[0][1] - c0,
            "build: wall": t1 - t0, "build: main CPU": c1 - c0, "workers: CPU": workers,
            "digest": digest.hexdigest()[:16]}


def _run(repo: Path, n: int, data_dir: Path, num_proc: int | None = None) -> dict:
    """:func:`_measure` (with ``num_proc``: :func:`_measure_build`) in a fresh interpreter (nothing imported or
    cached from an earlier run)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", str(repo), "--n", str(n),
           "--data-dir", str(data_dir)]
    if num_proc is not None:
        cmd += ["--build", "--num-proc", str(num_proc)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        raise SystemExit(f"serial_bench: the run with {repo} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="raw images in the tree (default 100,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per checkout; the best CPU time is kept")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout of medmat (e.g. `git worktree add --detach /tmp/base <commit>`)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medmat-bench",
                    help="where build_bench.py's synthetic images are generated once and reused")
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 300, one repeat")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--build", action="store_true",
                    help="time whole builds: to the first decoded image and to the end (see the module docstring)")
    ap.add_argument("--num-proc", type=int, default=2, help="with --build: the build's --num-proc (default 2)")
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        repo = Path(args._worker)
        result = (_measure_build(repo, args.n, args.data_dir, args.num_proc) if args.build
                  else _measure(repo, args.n, args.data_dir))
        print(json.dumps(result))
        return
    if args.quick:
        args.n, args.repeat = 300, 1
    repos = {"this checkout": REPO}
    if args.baseline is not None:
        if not (args.baseline / "medmat_builder").is_dir():
            raise SystemExit(f"--baseline {args.baseline} is not a medmat checkout (no medmat_builder/ in it)")
        repos = {"baseline": args.baseline.resolve(), **repos}
    runs: dict[str, list[dict]] = {name: [] for name in repos}
    for i in range(max(args.repeat, 1)):
        for name, repo in repos.items():
            print(f"[serial_bench] N={args.n}: {name}, run {i + 1}", file=sys.stderr)
            runs[name].append(_run(repo, args.n, args.data_dir, args.num_proc if args.build else None))
    measured = BUILD_ROWS if args.build else PHASES
    best = {name: {p: min(r[p] for r in rs) for p in measured} for name, rs in runs.items()}
    for b in best.values():
        if not args.build:
            b["total"] = b["walk"] + b["scan"] + b["split"]
    rows = []
    for phase in BUILD_ROWS if args.build else (*PHASES[:3], "total", "gc"):
        row = {"phase": phase, **{name: round(best[name][phase], 3) for name in repos}}
        if "baseline" in repos:
            row["baseline / this"] = round(best["baseline"][phase] / max(best["this checkout"][phase], 1e-9), 2)
        rows.append(row)
    digests = {name: {r["digest"] for r in rs} for name, rs in runs.items()}
    same = len(set().union(*digests.values())) == 1
    cols = list(rows[0])
    if args.build:
        print(f"Seconds, best of {args.repeat}, one build with --num-proc {args.num_proc}, N = {args.n:,} raw images; "
              f"load average {os.getloadavg()[0]:.1f}")
    else:
        print(f"CPU seconds, best of {args.repeat}, N = {args.n:,} raw images "
              f"({runs['this checkout'][0]['candidates']:,} candidates); load average {os.getloadavg()[0]:.1f}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    what = "exported bytes" if args.build else "candidates and splits"
    print(f"same {what} in every run: {'yes' if same else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "same": same}, indent=1))
    if not same:
        raise SystemExit(f"serial_bench: the runs gave different {what}")


if __name__ == "__main__":
    main()
