"""``medmat publish DIR --repo-id ORG/NAME``: license-gated upload of an export to the Hub."""

from __future__ import annotations

import argparse

from medmat_builder.publish import RESTRICTED_MODES, PublishError, publish, save_payload
from medmat_builder.registry import load_registry
from medmat_builder.safe_paths import FolderBusyError, UnsafePathError, check_output_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        help="upload an export to the Hugging Face Hub; images of non-redistributable sources never leave",
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
    p.add_argument("--registry", default=None, help="registry the export was built with (default: sources.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry)  # an invalid registry is reported by the CLI
    try:
        if args.save:  # the path rule before any work
            check_output_dir(args.save, "payload", label="--save", keep_clear=[("the export", args.dir)])
        result = publish(args.dir, args.repo_id, registry, private=args.private, restricted=args.restricted,
                         dry_run=args.dry_run, gate=not args.no_gate)
        saved = save_payload(result.plan, args.save) if args.save else None
    except UnsafePathError as exc:
        print(f"error: {exc}")
        return 2
    except (PublishError, FolderBusyError) as exc:
        print(f"error: {exc}")
        return 1
    if args.dry_run:
        print("dry run: nothing uploaded; would " + result.plan.describe())
    else:
        print(result.plan.describe())
        print(f"committed {result.commit_oid}: {result.commit_url}")
    if saved is not None:
        print(f"saved the payload to {saved}/ ({len(result.plan.files)} files); "
              f"`medmat fill {saved} --data-dir RAW --out DIR` puts the restricted images back")
    return 0
