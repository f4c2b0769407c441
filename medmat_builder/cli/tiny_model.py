"""``medmat tiny-model --arch llava --out DIR``: a tiny random vision-language model, made offline.

For demos, tests and CI: ``training/sft.py --model_name_or_path DIR`` (``python -m medmat_builder.train`` when
installed) trains it in seconds on a CPU; the command printed names the recipe that exists where medmat runs.
"""

from __future__ import annotations

import argparse
import sys

from medmat_builder.cli.main import common_options, summary
from medmat_builder.scripts import UsageError
from medmat_builder.tiny_models import ARCHS, available_archs, create_tiny_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tiny-model",
        parents=[common_options()],
        help=summary("tiny-model"),
        description=(
            "Create a tiny randomly initialised model of a real architecture, with a locally trained tokenizer "
            "and a chat template, saved with save_pretrained. Same --seed, same weights."
        ),
    )
    p.add_argument("--arch", choices=ARCHS, default="llava",
                   help="architecture (qwen2_vl needs torchvision; default: llava)")
    p.add_argument("--out", required=True, help="folder to write (from_pretrained loads it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a tiny model already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.arch not in available_archs():
        raise UsageError(f"--arch {args.arch} is not available here (needs torchvision); "
                         f"available: {', '.join(available_archs())}")
    try:
        out = create_tiny_model(args.arch, args.out, seed=args.seed, overwrite=args.overwrite)
    except (FileExistsError, RuntimeError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"tiny {args.arch} model in {out}")
    print(f"train it: {train_command(out)}")
    return 0


def train_command(model_dir: object) -> str:
    """The command that trains the tiny model: ``training/sft.py`` in a checkout, the module when installed."""
    from medmat_builder.resources import checkout_dir, recipes_dir

    if checkout_dir() is not None:
        return f"python training/sft.py --config training/recipes/tiny_cpu.yaml --model_name_or_path {model_dir}"
    recipe = recipes_dir() / "tiny_cpu.yaml"
    return f"python -m medmat_builder.train --config {recipe} --model_name_or_path {model_dir}"
