"""The ``medmat`` command line: one thin module per command (``add_parser``, ``run``), wired up here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from medmat_builder.registry import RegistryError
from medmat_builder.scripts import release_arrow_threads, run_script

__all__ = ["COMMANDS", "main", "make_parser", "release_arrow_threads", "run_script"]

COMMANDS = ["sources", "build", "audit", "plan", "fetch", "publish", "tiny_model", "export_task", "train", "evaluate",
            "fill", "report"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medmat", description="Med-MAT as code.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"medmat_builder.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RegistryError as exc:
        print(f"registry is invalid:\n{exc}")
        return 1
    except BrokenPipeError:  # `medmat sources list | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    finally:
        release_arrow_threads()
