"""Timing helper shared by the bench scripts (run as ``python bench/X.py``, so ``bench/`` is on the path)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable[[], object], repeat: int) -> float:
    """The shortest wall time, in seconds, of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
