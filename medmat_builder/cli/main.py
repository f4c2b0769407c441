"""The ``medmat`` command line: one thin module per command (``add_parser``, ``run``), wired up here.

Reading the arguments imports no heavy library: each command imports what it works with inside ``run``.
:func:`main` builds in full only the parser of the command given (the others are named with their
one-line help, for ``medmat --help``), so a command starts without importing the other commands' modules.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medmat_builder.cli.errors import report
from medmat_builder.scripts import release_arrow_threads, run_script

__all__ = ["COMMANDS", "SUBCOMMANDS", "common_options", "main", "make_parser", "release_arrow_threads", "run_script",
           "summary"]

#: Command -> (its module under ``medmat_builder.cli``, its one-line help), in the order ``medmat --help`` lists them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sources": ("sources", "list, show or check the registry of source datasets"),
    "build": ("build", "build subsets from raw sources into the Hub layout"),
    "audit": ("audit", "leakage audit: subjects (patients, lesions, volumes) found in both train and test"),
    "plan": ("plan", "plan CG training mixtures for a target subset (Related, Unrelated, w/o X, pairs, triples)"),
    "fetch": ("fetch", "download the sources that have a direct open download (sha256-checked, unpacked safely)"),
    "publish": ("publish",
                "upload an export to the Hugging Face Hub; images of non-redistributable sources never leave"),
    "tiny-model": ("tiny_model",
                   "create a tiny randomly initialised vision-language model (no download) for demos and tests"),
    "export-task": ("export_task", "write configs as lmms-eval tasks (YAML + hooks scored by medmat's parser)"),
    "train": ("train", "fine-tune a vision-language model on configs or a mixture (as training/sft.py; see --help)"),
    "eval": ("evaluate",
             "evaluate a model on configs: accuracy with intervals, grounding by IoU (as eval/evaluate.py; see --help)"),
    "fill": ("fill",
             "fill the image-less rows of a downloaded or `medmat publish --save` payload from your raw archives"),
    "report": ("report", "visual build report: sample thumbnails, label counts, ledgers, duplicates, leakage (HTML)"),
}

#: The command modules under ``medmat_builder.cli`` (each has ``add_parser(subparsers)``).
COMMANDS = [module for module, _ in SUBCOMMANDS.values()]


def summary(command: str) -> str:
    """The one-line help of ``command`` (``medmat --help`` shows it without importing the command's module)."""
    return SUBCOMMANDS[command][1]


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


def make_parser(only: str | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The ``medmat`` parser: every command in full, or with ``only`` just that one (the others named, with their help,
    and taking nothing); ``full=False`` with no ``only`` builds none in full (enough to tell which command is given)."""
    parser = argparse.ArgumentParser(prog="medmat", description="Med-MAT as code.", parents=[common_options(top=True)])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, text) in SUBCOMMANDS.items():
        if name == only or (only is None and full):
            importlib.import_module(f"medmat_builder.cli.{module}").add_parser(sub)
        else:  # a placeholder: named in --help, accepts anything (the real parser reads the arguments)
            sub.add_parser(name, help=text, add_help=False, prefix_chars="\0")
    return parser


def command_of(argv: list[str] | None) -> str | None:
    """The command ``argv`` names, read as the full parser reads it; errors and ``--help`` at the top level are
    handled (and exit) as the full parser handles them. ``None``: no command was recognised."""
    args, _ = make_parser(full=False).parse_known_args(argv)
    return getattr(args, "command", None)


def main(argv: list[str] | None = None) -> int:
    args = make_parser(only=command_of(argv)).parse_args(argv)
    import logging  # after the arguments: `--help` does without it

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
