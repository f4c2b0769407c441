"""Run-length encoded masks (Kaggle segmentation contests): ``"start length start length ..."`` strings."""

from __future__ import annotations

import numpy as np


def decode_rle(
    rle: str,
    width: int,
    height: int,
    order: str = "row",
    starts: str = "absolute",
    base: int = 1,
) -> np.ndarray:
    """Decode a run-length string ``"start length start length ..."`` to a boolean mask (h, w).

    ``order``: ``row`` (pixels numbered along rows, Kaggle's UW-Madison) or ``column`` (down
    columns first, SIIM-ACR). ``starts``: ``absolute`` positions, or ``relative`` (each start
    counts from the end of the previous run, SIIM-ACR stage 1). ``base``: 1 when the first pixel
    is numbered 1 (the Kaggle convention), 0 when it is 0.
    """
    values = [int(v) for v in rle.split()]
    if len(values) % 2:
        raise ValueError(f"run-length string has an odd number of values ({len(values)})")
    flat = np.zeros(width * height, dtype=bool)
    pos = 0
    for start, length in zip(values[0::2], values[1::2]):
        if length < 0 or start < 0:
            raise ValueError(f"negative start or length in run-length string ({start} {length})")
        begin = pos + start if starts == "relative" else start - base
        if begin < 0 or begin + length > flat.size:
            raise ValueError(f"run {start} {length} falls outside a {width}x{height} image")
        flat[begin : begin + length] = True
        pos = begin + length
    if order == "column":
        return flat.reshape(width, height).T
    return flat.reshape(height, width)


def encode_rle(mask: np.ndarray, order: str = "row", starts: str = "absolute", base: int = 1) -> str:
    """Inverse of :func:`decode_rle` (used to write synthetic sources)."""
    flat = (mask.T if order == "column" else mask).reshape(-1).astype(np.int8)
    padded = np.concatenate([[0], flat, [0]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = edges.reshape(-1, 2)
    out: list[int] = []
    pos = 0
    for begin, end in runs:
        if starts == "relative":
            out += [int(begin - pos), int(end - begin)]
            pos = int(end)
        else:
            out += [int(begin + base), int(end - begin)]
    return " ".join(map(str, out))
