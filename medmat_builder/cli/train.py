"""``medmat train [FLAGS]``: fine-tune a model, the same flags and run as ``training/sft.py``.

Everything after ``train`` goes to :func:`medmat_builder.train.main` unchanged (``medmat train --help``
lists it). For several processes use a launcher: ``accelerate launch -m medmat_builder.train FLAGS``.
"""

from __future__ import annotations

import argparse

from medmat_builder.cli.main import summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", add_help=False, prefix_chars="\0",  # every flag, --help included, is training/sft.py's
        help=summary("train"),
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="the flags of training/sft.py (`medmat train --help` lists them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medmat_builder.train import main

    return main(args.args, prog="medmat train")
