"""Evaluation items: the test split of each requested config, in a fixed order, with a fingerprint.

Rows with options are multiple-choice items (``task="choice"``); rows without options are grounding
items (``task="grounding"``, detection/segmentation subsets), whose reference is the row's ``boxes``.
With ``circular=True`` each choice item is asked once per rotation of its options (see
:func:`rotations`); grounding items are asked once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from medmat_builder.loading import require_images

from .parsing import LETTERS

TASKS = ("choice", "grounding")


@dataclass
class EvalItem:
    """One question to score: multiple choice (letter answer) or grounding (box answer)."""

    index: int  # position in the full (all configs) item list; used to shard and to restore order
    id: str
    config: str
    question: str
    options: list[str]
    gold: str
    gold_label: str
    image: Any  # PIL image
    task: str = "choice"
    boxes: list[dict[str, Any]] = field(default_factory=list)  # grounding: reference boxes (0-1000 grid)
    rotation: int | None = None  # circular evaluation: options shifted left by this many places


def fingerprint_rows(ids: Sequence[str], answers: Sequence[str]) -> str:
    """sha256 over the (id, gold answer) pairs in split order: changes whenever the items change."""
    h = hashlib.sha256()
    for i, a in zip(ids, answers):
        h.update(f"{i}\t{a}\n".encode())
    return h.hexdigest()


def rotate_question(question: str, options: Sequence[str], shift: int) -> str:
    """``question`` with its lettered option lines (``A. text``) rewritten for options shifted by ``shift``.

    The option lines must stand in the question as ``medmat build`` writes them (one ``X. option``
    line per option, in letter order); otherwise the question cannot be rotated and this raises.
    """
    lines = question.split("\n")
    want = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    starts = [i for i in range(len(lines) - len(want) + 1) if lines[i : i + len(want)] == want]
    if len(starts) != 1:
        raise ValueError(
            "circular evaluation needs the options as 'A. text' lines in the question (the Med-MAT template); "
            f"found {len(starts)} such block(s) in {question[:80]!r}..."
        )
    rotated = list(options[shift:]) + list(options[:shift])
    at = starts[0]
    lines[at : at + len(want)] = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(rotated)]
    return "\n".join(lines)


def rotations(item: EvalItem) -> list[EvalItem]:
    """The item once per rotation of its options (n options -> n items, rotation 0 first).

    Rotation ``k`` shifts the options left by ``k`` places, so the correct option moves from letter
    index ``g`` to ``(g - k) mod n``: across all rotations it stands once under every letter.
    """
    n = len(item.options)
    if item.task != "choice" or n < 2:
        return [replace(item, rotation=0)]
    gold = LETTERS.index(item.gold)
    out = []
    for k in range(n):
        out.append(replace(
            item, rotation=k, options=item.options[k:] + item.options[:k],
            question=rotate_question(item.question, item.options, k), gold=LETTERS[(gold - k) % n],
        ))
    return out


def load_split(dataset_name: str, config: str, split: str) -> Any:
    """One split of one config; a local export is read through a content-fingerprinted cache."""
    from medmat_builder.loading import load_split as _load

    return _load(dataset_name, config, split)


_GOLD = re.compile(rf"^[{LETTERS}]$")


def load_items(
    dataset_name: str, configs: Sequence[str], split: str = "test", limit: int | None = None,
    circular: bool = False,
) -> tuple[list[EvalItem], dict[str, dict[str, Any]]]:
    """Items of ``split`` for each config (first ``limit`` per config) and per-config dataset info.

    The info per config holds ``split_size`` (rows in the split), ``n`` (rows evaluated), ``task``
    and ``fingerprint`` (see :func:`fingerprint_rows`). A config must be all multiple choice or all
    grounding. With ``circular``, choice items come once per rotation (``index`` counts the copies).
    """
    items: list[EvalItem] = []
    info: dict[str, dict[str, Any]] = {}
    for config in configs:
        try:
            ds = load_split(dataset_name, config, split)
        except ValueError as exc:
            raise ValueError(
                f"cannot load config {config!r} split {split!r} from {dataset_name!r}: {exc}. "
                "Check the name with `medmat build` output (README configs) or the Hub page."
            ) from exc
        require_images(ds, dataset_name, config, split)  # MissingImagesError (a ValueError) names `medmat fill`
        size = len(ds)
        if limit is not None:
            ds = ds.select(range(min(limit, size)))
        ids, answers = ds["id"], ds["answer"]
        kinds = {"choice" if opts else "grounding" for opts in ds["options"]}
        if len(kinds) > 1:
            raise ValueError(f"config {config!r} mixes rows with and without options; cannot score it as one task")
        task = kinds.pop() if kinds else "choice"
        if task == "grounding" and "boxes" not in ds.column_names:
            raise ValueError(f"config {config!r} has rows without options but no 'boxes' column to score them against")
        info[config] = {
            "split": split,
            "split_size": size,
            "n": len(ds),
            "task": task,
            "fingerprint": fingerprint_rows(ids, answers),
            "datasets_fingerprint": getattr(ds, "_fingerprint", None),
        }
        for row in ds:
            if task == "choice" and not _GOLD.match(row["answer"]):
                raise ValueError(f"config {config!r} item {row['id']}: answer {row['answer']!r} is not an option letter")
            item = EvalItem(
                index=0, id=row["id"], config=config, question=row["question"], options=list(row["options"]),
                gold=row["answer"], gold_label=row["answer_label"], image=row["image"], task=task,
                boxes=list(row.get("boxes") or []) if task == "grounding" else [],
            )
            for copy in rotations(item) if circular else [item]:
                copy.index = len(items)
                items.append(copy)
    return items, info
