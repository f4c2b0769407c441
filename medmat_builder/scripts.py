"""How medmat's programs end: the ``medmat`` command, training and evaluation scripts join Arrow's threads first.

It stands apart (it imports nothing of medmat's) so that the command line and the training and
evaluation code, which sit at different places of the flow, share it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable


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
    gc.collect()
