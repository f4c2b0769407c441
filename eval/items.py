"""Evaluation items: the test split of each requested config, in a fixed order, with a fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class EvalItem:
    """One multiple-choice question to score."""

    index: int  # position in the full (all configs) item list; used to shard and to restore order
    id: str
    config: str
    question: str
    options: list[str]
    gold: str
    gold_label: str
    image: Any  # PIL image


def fingerprint_rows(ids: Sequence[str], answers: Sequence[str]) -> str:
    """sha256 over the (id, gold answer) pairs in split order: changes whenever the items change."""
    h = hashlib.sha256()
    for i, a in zip(ids, answers):
        h.update(f"{i}\t{a}\n".encode())
    return h.hexdigest()


def load_split(dataset_name: str, config: str, split: str) -> Any:
    """One split of one config; a local export is read through a content-fingerprinted cache."""
    from medmat_builder.loading import load_split as _load

    return _load(dataset_name, config, split)


def load_items(
    dataset_name: str, configs: Sequence[str], split: str = "test", limit: int | None = None
) -> tuple[list[EvalItem], dict[str, dict[str, Any]]]:
    """Items of ``split`` for each config (first ``limit`` per config) and per-config dataset info.

    The info per config holds ``split_size`` (rows in the split), ``n`` (rows evaluated) and
    ``fingerprint`` (see :func:`fingerprint_rows`). Detection/segmentation configs are rejected: their
    answers are boxes, not letters.
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
        size = len(ds)
        if limit is not None:
            ds = ds.select(range(min(limit, size)))
        ids, answers = ds["id"], ds["answer"]
        for row_opts in ds["options"]:
            if not row_opts:
                raise ValueError(
                    f"config {config!r} has items without options (a detection/segmentation subset?); "
                    "eval/evaluate.py scores multiple-choice configs only"
                )
        info[config] = {
            "split": split,
            "split_size": size,
            "n": len(ds),
            "fingerprint": fingerprint_rows(ids, answers),
            "datasets_fingerprint": getattr(ds, "_fingerprint", None),
        }
        for row in ds:
            items.append(
                EvalItem(
                    index=len(items), id=row["id"], config=config, question=row["question"],
                    options=list(row["options"]), gold=row["answer"], gold_label=row["answer_label"],
                    image=row["image"],
                )
            )
    return items, info
