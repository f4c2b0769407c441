"""The ``medmat`` command line: one thin module per command (``add_parser``, ``run``), wired up here.

Reading the arguments imports no heavy library: each command imports what it works with inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from medmat_builder.cli.errors import report
from medmat_builder.scripts import release_arrow_threads, run_script

__all__ = ["COMMANDS", "common_options", "main", "make_parser", "release_arrow_threads", "run_script"]

COMMANDS = ["sources", "build", "audit", "plan", "fetch", "publish", "tiny_model", "export_task", "train", "evaluate",
            "fill", "report"]


def common_options(top: bool = False) -> argparse.ArgumentParser:
    """``--registry`` and ``-v``, taken before and after a command (``parents=[common_options()]``).

    Only the top level holds the defaults; below it an option not given leaves the value alone.
    """
    p = argparse.ArgumentParser(add_help=False)
    keep = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("--registry", metavar="FILE", **({"default": None} if top else keep),
                   help="registry file (default: the repository's sources.yaml)")
    p.add_argument("-v", "--verbose", action="store_true", **({"default": False} if top else keep),
                   help="log progress; show the traceback of an unexpected error")
    return p


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medmat", description="Med-MAT as code.", parents=[common_options(top=True)])
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
    except BrokenPipeError:  # `medmat sources list | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line that says what to do (cli/errors.py); the traceback with -v
        return report(exc, verbose=args.verbose)
    finally:
        release_arrow_threads()
