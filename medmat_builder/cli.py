"""The ``medmat`` command line: sources, build, audit, plan, fetch, publish, tiny-model, export-task."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from medmat_builder.registry import RegistryError

COMMANDS = ["sources", "build", "audit", "plan", "fetch", "publish", "tiny_model", "export_task", "train", "evaluate"]


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


def run_script(main: Callable[[], int]) -> None:
    """Entry point of the scripts (training/sft.py, eval/*.py): run, join Arrow threads, exit."""
    try:
        code = main()
    finally:
        release_arrow_threads()
    raise SystemExit(code)


def release_arrow_threads() -> None:
    """Collect finished Arrow readers now, while Arrow's C++ runtime is still alive.

    Otherwise their background threads can outlive it into interpreter teardown, where destroying
    a still-joinable thread calls std::terminate: the process prints "terminate called without an
    active exception" and exits with 134 *after* all work is done (apache/arrow#34314,
    huggingface/datasets#7566). Collecting early joins them cleanly; a real failure still fails.
    """
    import gc

    gc.collect()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
