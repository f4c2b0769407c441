"""``medmat publish DIR --repo-id ORG/NAME``: license-gated upload of an export to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError

#: ``publish.hub.RESTRICTED_MODES``, spelled out so that reading the options imports no Hub library
#: (tests/test_cli_errors.py checks that they agree).
RESTRICTED_MODES = ("text-only", "skip")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        parents=[common_options()],
        help=summary("publish"),
    )
    p.add_argument("dir", help="export folder written by `medmat build`")
    p.add_argument("--repo-id", required=True, help="dataset repo, ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--dry-run", action="store_true", help="print every file, row and image count; upload nothing")
    p.add_argument("--save", metavar="DIR", default=None,
                   help="also write the payload, exactly as uploaded, to DIR (Hub layout: README configs + parquet); "
                        "`medmat fill DIR` puts the restricted images back from your raw archives")
    p.add_argument("--restricted", choices=RESTRICTED_MODES, default="text-only",
                   help="configs with sources that forbid redistribution: publish them without those images "
                        "(text-only, default) or leave them out (skip)")
    p.add_argument("--no-gate", action="store_true",
                   help="do not turn on the Hub's access gate when sources carry non-commercial/unknown terms")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish (or plan it); a failure is one line on stderr and exit 1 (cli/errors.py)."""
    from medmat_builder.publish import publish, save_payload
    from medmat_builder.registry import load_registry
    from medmat_builder.safe_paths import check_output_dir

    if not Path(args.dir).is_dir():
        what = "is not a folder" if Path(args.dir).exists() else "does not exist"
        raise UsageError(f"{args.dir} {what}: give the export folder written by `medmat build`")
    if args.repo_id.count("/") > 1 or not all(args.repo_id.split("/")):
        raise UsageError(f"--repo-id {args.repo_id!r}: give ORG/NAME (or USER/NAME) of a dataset repo on the Hub")
    if args.save:  # the path rule before any work (a refused folder is exit 2, cli/errors.py)
        check_output_dir(args.save, "payload", label="--save", keep_clear=[("the export", args.dir)])
    registry = load_registry(args.registry)  # the registry the export was built with
    result = publish(args.dir, args.repo_id, registry, private=args.private, restricted=args.restricted,
                     dry_run=args.dry_run, gate=not args.no_gate)
    saved = save_payload(result.plan, args.save) if args.save else None
    if args.dry_run:
        print("dry run: nothing uploaded; would " + result.plan.describe())
    else:
        print(result.plan.describe())
        print(f"committed {result.commit_oid}: {result.commit_url}")
    if saved is not None:
        print(f"saved the payload to {saved}/ ({len(result.plan.files)} files); "
              f"`medmat fill {saved} --data-dir RAW --out DIR` puts the restricted images back")
    return 0
