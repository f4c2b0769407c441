"""How medmat's programs end: the ``medmat`` command, training and evaluation scripts join Arrow's threads first,
and a mistake of the user ends them with one line (:class:`UsageError`, exit status 2).

It stands apart (it imports nothing of medmat's) so that the command line and the training and
evaluation code, which sit at different places of the flow, share it.
"""

from __future__ import annotations

import difflib
import gc
import sys
from collections.abc import Callable, Iterable

#: Exit status of a usage error (argparse's convention); a failure while working exits with 1.
USAGE_EXIT = 2


class UsageError(Exception):
    """The command names something that does not exist or may not be used (a config, a source, a path).

    The message is one line that says what to do; programs print it as ``error: MESSAGE`` and exit with
    :data:`USAGE_EXIT`, without a traceback.
    """

    exit_code = USAGE_EXIT

    def __str__(self) -> str:  # a KeyError subclass would otherwise print its message quoted
        return str(self.args[0]) if self.args else self.__class__.__name__


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``"; did you mean subset_09, subset_19?"`` for an unknown ``name`` (empty when nothing is close).

    Closeness is :func:`difflib.get_close_matches` on lowercased names, so a difference in case alone
    always matches.
    """
    choices = list(dict.fromkeys(choices))
    lower = {c.lower(): c for c in reversed(choices)}
    near = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return f"; did you mean {', '.join(lower[c] for c in near)}?" if near else ""


def run_script(main: Callable[[], int]) -> None:
    """Entry point of the scripts (training/sft.py, eval/*.py): run, join Arrow threads, exit."""
    try:
        code = main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
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
    gc.collect()
