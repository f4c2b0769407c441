"""``medmat eval [FLAGS]``: evaluate a model on configs, the same flags and run as ``eval/evaluate.py``.

Everything after ``eval`` goes to :func:`medmat_builder.evaluate.cli.main` unchanged (``medmat eval
--help`` lists it). Data-parallel: ``accelerate launch -m medmat_builder.evaluate FLAGS``.
"""

from __future__ import annotations

import argparse

from medmat_builder.cli.main import summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", add_help=False, prefix_chars="\0",  # every flag, --help included, is eval/evaluate.py's
        help=summary("eval"),
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="the flags of eval/evaluate.py (`medmat eval --help` lists them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medmat_builder.evaluate.cli import main

    return main(args.args, prog="medmat eval")
