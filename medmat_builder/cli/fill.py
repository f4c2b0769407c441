"""``medmat fill PAYLOAD --data-dir RAW --out OUT``: put restricted sources' images back into a text-only payload."""

from __future__ import annotations

import argparse

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError

#: ``build.refill.FILL_REPORT_NAME``, spelled out so that reading the options imports no build library.
FILL_REPORT_NAME = "fill_report.json"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fill",
        parents=[common_options()],
        help=summary("fill"),
        description="Find each image-less row's raw file under --data-dir (by its stable id, through the registry's "
                    "layouts), decode it as the build does, keep it only if it matches the row's image_hash, and "
                    "write the payload with the images to --out. Exit 0 when every row has an image, 1 when some "
                    f"rows could not be filled (the table and OUT/{FILL_REPORT_NAME} say which and why).",
    )
    p.add_argument("payload", help="payload folder: `hf download ORG/NAME --repo-type dataset --local-dir DIR`, "
                                   "or `medmat publish --save DIR`")
    p.add_argument("--data-dir", required=True,
                   help="folder with each source unpacked as DIR/<key>/ (as for `medmat build`)")
    p.add_argument("--out", required=True, help="output folder: new, empty, or an earlier `medmat fill` output")
    p.add_argument("--num-proc", type=int, default=1, help="processes decoding images (default: 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fill; a refused folder is one line and exit 2, a failure exit 1 (cli/errors.py); 1 too when rows stay empty."""
    from medmat_builder.build.refill import fill_payload
    from medmat_builder.registry import load_registry

    if args.num_proc < 1:
        raise UsageError(f"--num-proc {args.num_proc}: give 1 or more processes")
    registry = load_registry(args.registry)
    report = fill_payload(args.payload, args.data_dir, args.out, registry, num_proc=args.num_proc)
    print(report.table())
    print(f"wrote {report.out}/ and {report.out}/{FILL_REPORT_NAME}")
    return 0 if report.complete else 1
