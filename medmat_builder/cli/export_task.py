"""``medmat export-task CONFIG... --dataset PATH_OR_HUB_ID --out DIR``: configs as lmms-eval tasks."""

from __future__ import annotations

import argparse
import sys

from medmat_builder.cli.main import common_options, summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-task",
        parents=[common_options()],
        help=summary("export-task"),
        description=(
            "Write one lmms-eval task per config (classification and grounding) into --out, with the hooks "
            "(image, prompt, target) and medmat's deterministic parsers as the metric. Run them with "
            "`python -m lmms_eval --include_path OUT --tasks medmat_subset_28 ...` (pip install -e '.[lmms]')."
        ),
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="config names, e.g. subset_28 subset_38")
    p.add_argument("--dataset", required=True, help="export folder from `medmat build` or a Hub dataset id")
    p.add_argument("--out", required=True, help="folder for the task files (created)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="generation length (default: 16 for multiple choice, 128 for grounding)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medmat_builder.publish import export_tasks, task_name

    try:  # an unknown config name is a usage error naming the closest ones (cli/errors.py)
        paths = export_tasks(args.configs, args.dataset, args.out, split=args.split,
                             max_new_tokens=args.max_new_tokens)
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    names = ",".join(task_name(c) for c in args.configs)
    print(f"run: python -m lmms_eval --model MODEL --model_args pretrained=PATH --include_path {args.out} --tasks {names}")
    return 0
