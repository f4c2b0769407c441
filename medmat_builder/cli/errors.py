"""How the ``medmat`` command reports a failure: one line on stderr that says what to do, and an exit status.

- 2, a usage error (argparse's convention): the command line names something that does not exist or
  may not be used: an unknown config or source (:class:`~medmat_builder.registry.UnknownNameError`),
  a registry file that is not there, a refused or missing path
  (:class:`~medmat_builder.safe_paths.UnsafePathError`), any :class:`UsageError`.
- 1, a failure while working: an invalid registry, a build, fetch or publish that could not finish.
  Every exception class medmat defines is written for the user, so its message is the line.
- Anything else is a bug: one line asking to rerun with ``-v``, which shows the traceback.

With ``-v`` a known error prints its whole message (a list of missing sources with how to get each).

Nothing here imports a heavy library: the classes are recognised by name and module.
"""

from __future__ import annotations

import sys

from medmat_builder.scripts import USAGE_EXIT, UsageError, did_you_mean

__all__ = ["USAGE_EXIT", "UsageError", "did_you_mean", "exit_code", "message", "report"]

#: medmat's exception classes that mean "the path or the name given is wrong" (exit 2), by name.
USAGE_CLASSES = {"UnsafePathError"}


def exit_code(exc: BaseException) -> int | None:
    """The exit status for an error medmat knows (2 usage, 1 failure), ``None`` for an unexpected one."""
    if isinstance(exc, UsageError):
        return exc.exit_code
    ours = [c for c in type(exc).__mro__ if c.__module__.startswith("medmat_builder.")]
    if any(c.__name__ in USAGE_CLASSES for c in ours):
        return USAGE_EXIT
    if ours or isinstance(exc, OSError):
        return 1
    return None


def message(exc: BaseException) -> str:
    """The one line printed for ``exc``: its message's first line (medmat's messages put what to do
    there), with a pointer to ``-v`` when more lines follow."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [type(exc).__name__]
    more = len(lines) - 1
    return lines[0] + (f" (and {more} more line{'s' if more > 1 else ''}: -v prints them)" if more else "")


def report(exc: BaseException, verbose: bool = False) -> int:
    """Print ``exc`` as one ``error:`` line on stderr and return the exit status.

    With ``verbose`` a known error prints its whole message (every line), an unexpected one its traceback.
    """
    code = exit_code(exc)
    if verbose and code is not None:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {text.strip()}", file=sys.stderr)
        return code
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if code is None:
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
              + ("" if verbose else " (rerun with -v for the traceback, and please report it)"), file=sys.stderr)
        return 1
    print(f"error: {message(exc)}", file=sys.stderr)
    return code
