"""The ``medmat`` command line: sources, build, plan, fetch, publish, tiny-model."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ["sources", "build", "plan", "fetch", "publish", "tiny_model"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medmat", description="Med-MAT as code.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"medmat_builder.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
