"""``medmat build``: raw sources (or the synthetic demo) -> Hub-layout export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from medmat_builder.cli.main import common_options, summary
from medmat_builder.records import DEFAULT_SEED
from medmat_builder.scripts import UsageError

if TYPE_CHECKING:
    from medmat_builder.build import BuildResult

DEMO_RAW = "medmat_demo_raw"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help=summary("build"), parents=[common_options()])
    p.add_argument("configs", nargs="*", help="configs to build (subset_01 .. subset_53; default: all)")
    p.add_argument("--data-dir", default=None, help="folder with each source unpacked as DIR/<key>/")
    p.add_argument("--out", default="medmat",
                   help="output folder: a new path, an empty folder or an earlier medmat export (default: ./medmat)")
    p.add_argument("--num-proc", type=int, default=None, help="processes decoding images (default: the machine's cores)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed for splits, order and questions (default: {DEFAULT_SEED})")
    p.add_argument("--partial", action="store_true", help="build from the sources present; record the missing")
    p.add_argument("--lenient", action="store_true", help="count raw labels outside the clusters as dropped")
    p.add_argument("--demo", action="store_true",
                   help=f"write synthetic sources (to --data-dir, default ./{DEMO_RAW}: a new, empty or earlier "
                        "demo folder) and build from them")
    p.add_argument("--force", action="store_true",
                   help="rebuild configs whose output is complete and whose inputs are unchanged (kept otherwise)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="per-stage progress (scan, decode, write) on stderr; auto: only when stderr is a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build; a wrong name or path ends with one line and exit 2, a failed build with 1 (cli/errors.py)."""
    from medmat_builder.registry import load_registry

    registry = load_registry(args.registry)
    raw = args.data_dir or (DEMO_RAW if args.demo else None)
    if raw is None:
        raise UsageError("give --data-dir RAW (each source unpacked as RAW/<key>/), or --demo")
    if args.num_proc is not None and args.num_proc < 1:
        raise UsageError(f"--num-proc {args.num_proc}: give 1 or more processes")
    configs = [registry.subset(c).name for c in args.configs]  # unknown names first, with the closest ones
    if not args.demo and not Path(raw).is_dir():
        what = "is not a folder" if Path(raw).exists() else "does not exist"
        raise UsageError(f"--data-dir {raw} {what}; unpack the sources as {raw}/<key>/ "
                         "(`medmat sources list`), or build the synthetic demo with --demo")
    from medmat_builder.build import BuildInterrupted, BuildSettings, build, check_out, config_tables  # after the names
    from medmat_builder.safe_paths import check_output_dir

    check_out(args.out, raw)  # every path rule before any work
    if args.demo:
        check_output_dir(raw, "demo", label="--data-dir")
        from medmat_builder.demo import write_demo_sources

        keys = {k for c in configs for k in registry.subset(c).sources} if configs else None
        counts = write_demo_sources(raw, registry, keys=keys)
        print(f"wrote synthetic raw sources for {len(counts)} sources ({sum(counts.values())} images) to {raw}/")
    settings = BuildSettings(seed=args.seed, lenient=args.lenient,
                             **({"num_proc": args.num_proc} if args.num_proc is not None else {}))
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        result = build(configs or None, raw, args.out, settings, partial=args.partial, registry=registry,
                       progress=show, force=args.force)
    except BuildInterrupted as exc:  # temporary files are gone, workers stopped, the previous output loads
        print(f"build stopped by {exc.signal_name}: temporary files removed, workers stopped; every config in "
              f"{args.out} loads, as before or as rebuilt (run the same command again to finish)", file=sys.stderr)
        return exc.exit_code
    tables = config_tables(result.report, result.built)
    for line in [*tables, *([""] if tables else []), *summary_lines(result)]:
        print(line)
    return 0


def summary_lines(result: BuildResult) -> list[str]:
    """The table printed after a build: rows per split (the parquet row counts), subjects, OOD, drops."""
    lines = [f"{'config':<10} {'train':>6} {'test':>6} {'subjects':>13}  {'ood':<4} dropped"]
    leaking = []
    for name in result.built:
        rep = result.report.configs[name]
        n, groups = rep.num_examples, rep.groups
        subjects = f"{groups.train}/{groups.test}"
        if groups.across_splits:
            leaking.append(f"{name}: {groups.across_splits} subjects span train and test (official split)")
        lines.append(f"{name:<10} {n.train:>6} {n.test:>6} {subjects:>13}  {'yes' if rep.ood else 'no':<4} "
                     + ", ".join(f"{k}={v}" for k, v in sorted(rep.dropped().items())))
    for name, why in result.skipped.items():
        lines.append(f"{name:<10} skipped: {why}")
    for name in result.unchanged:
        lines.append(f"{name:<10} unchanged: complete output, same inputs; kept (--force rebuilds)")
    seen: dict[str, list[str]] = {}
    for name in result.built:  # one line per warning, naming every config it came up in
        for warning in result.report.configs[name].warnings:
            seen.setdefault(warning, []).append(name)
    lines += [f"warning ({', '.join(names)}): {warning}" for warning, names in seen.items()]
    lines += [f"leakage: {line}; run `medmat audit {result.out}` to list them" for line in leaking]
    lines.append(f"wrote {Path(result.out)} ({len(result.built)} configs built); "
                 f"load with datasets.load_dataset({str(result.out)!r}, 'subset_NN')")
    return lines
