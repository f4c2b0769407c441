"""The ``datasets`` features of an exported record, made from :data:`medmat_builder.records.COLUMNS`."""

from __future__ import annotations

from functools import lru_cache

import datasets

from medmat_builder.records import BOX_COLUMNS, COLUMNS


def _feature(dtype: str) -> datasets.Value | datasets.Image | datasets.List:
    if dtype == "image":
        return datasets.Image()
    if dtype == "list[box]":
        return datasets.List({c.name: _feature(c.dtype) for c in BOX_COLUMNS})
    if dtype.startswith("list["):
        return datasets.List(_feature(dtype[len("list["):-1]))
    return datasets.Value(dtype)


@lru_cache(maxsize=1)
def export_features() -> datasets.Features:
    """The features of every exported config (one per column of :data:`~medmat_builder.records.COLUMNS`, in order)."""
    return datasets.Features({c.name: _feature(c.dtype) for c in COLUMNS})
