"""Progress of a build, per stage: scan (records read), decode (images opened and verified), write (rows).

One :mod:`tqdm` counter per stage and config, with its count and rate, on standard error; nothing
at all unless the build turned progress on (the CLI does when standard error is a terminal). The
stages call :func:`stage` (or wrap an iterator with :func:`counted`) and never know whether anything
is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: The stages and the unit each one counts.
STAGES = {"scan": "record", "decode": "image", "write": "row"}


class _Null:
    def update(self, n: int = 1) -> None:
        pass


_state: dict[str, object] = {"enabled": False, "config": ""}


@contextmanager
def showing(enabled: bool) -> Iterator[None]:
    """Show stage counters while the block runs (``enabled`` False: stay silent)."""
    before = dict(_state)
    _state["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _state.clear()
        _state.update(before)


def set_config(name: str) -> None:
    """Name the config the next counters belong to."""
    _state["config"] = name


@contextmanager
def stage(name: str, total: int | None = None):
    """A counter for stage ``name`` (``.update(n)``); a no-op unless :func:`showing` turned progress on."""
    if not _state["enabled"]:
        yield _Null()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{_state['config']} {name}".strip(), unit=STAGES.get(name, "item"),
               file=sys.stderr, leave=False, dynamic_ncols=True, mininterval=0.2)
    try:
        yield bar
    finally:
        bar.close()


def counted(items: Iterable[T], name: str) -> Iterator[T]:
    """Yield ``items``, counting each under stage ``name`` (progress off: ``items`` as they are, no cost per item)."""
    if not _state["enabled"]:
        return iter(items)
    return _counted(items, name)


def _counted(items: Iterable[T], name: str) -> Iterator[T]:
    with stage(name) as bar:
        for item in items:
            bar.update()
            yield item
