"""``medmat audit OUT [configs]``: list the subjects that appear in both train and test of an export."""

from __future__ import annotations

import argparse

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "audit", parents=[common_options()], help=summary("audit"))
    p.add_argument("out", help="export folder written by `medmat build` (e.g. ./medmat)")
    p.add_argument("configs", nargs="*", help="configs to audit (default: every config in the folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print subjects per split for each config and every subject on both sides; exit 1 if there is one."""
    from medmat_builder.build import AuditError, audit_export

    try:
        results = audit_export(args.out, args.configs or None)
    except AuditError as exc:  # a folder or config name that is not there: a usage error
        raise UsageError(str(exc)) from None
    if not results:
        raise UsageError(f"{args.out} holds no config (no CONFIG/*.parquet): give an export folder written by `medmat build`")
    print(f"{'config':<10} {'train subjects':>14} {'test subjects':>13} {'in both':>8}")
    for name, audit in results.items():
        print(f"{name:<10} {audit.subjects['train']:>14} {audit.subjects['test']:>13} {len(audit.spanning):>8}")
    leaking = {name: a for name, a in results.items() if a.leaks}
    for name, audit in leaking.items():
        print(f"{name}: {len(audit.spanning)} subjects span train and test:")
        for s in audit.spanning:
            print(f"  source {s.source} group {s.group}: {s.train} train rows (e.g. {s.ids.train}), "
                  f"{s.test} test rows (e.g. {s.ids.test})")
    total = sum(len(a.spanning) for a in results.values())
    print(f"{total} subjects across splits in {len(leaking)} of {len(results)} configs")
    return 1 if leaking else 0
