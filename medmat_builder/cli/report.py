"""``medmat report OUT``: (re)write the visual build report of an export, ``OUT/report/index.html``."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", parents=[common_options()], help=summary("report"))
    p.add_argument("out", help="export folder written by `medmat build` (e.g. ./medmat)")
    p.add_argument("--data-dir", default=None,
                   help="raw data folder the export was built from: shows each sample's raw path and the "
                        "duplicates' images (default: the raw paths the previous report recorded)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write ``OUT/report/`` (replacing only the report files medmat wrote) and print the summary page's path.

    A folder that is not an export, or holds files under ``report/`` that medmat did not write, is one line
    and exit 2 (cli/errors.py).
    """
    from medmat_builder.build.export import BuildError, build_lock
    from medmat_builder.publish.visual import INDEX, REPORT_DIR, report_user_files, write_visual_report
    from medmat_builder.registry import load_registry
    from medmat_builder.report import BuildReport, ReportError
    from medmat_builder.safe_paths import UnsafePathError

    out = Path(args.out)
    try:
        report = BuildReport.read(out)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    registry = load_registry(args.registry)
    try:
        with build_lock(out, args.data_dir) as owned:
            ours = owned.files()
            clash = report_user_files(out, ours)
            if clash:
                raise UnsafePathError(f"{out} holds {', '.join(clash[:5])} under {REPORT_DIR}/, which medmat did not "
                                      "write; move them out of it and run again")
            staging = owned.scratch()
            try:
                write_visual_report(out, registry, report, raw=args.data_dir, into=staging)
                owned.commit(staging, remove=[f for f in ours if f.startswith(REPORT_DIR + "/")])
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except BuildError as exc:  # another process holds the folder
        raise UsageError(str(exc)) from None
    print(f"wrote {out / REPORT_DIR / INDEX}")
    return 0
