"""lmms-eval hooks of an exported medmat task: the image, the prompt, the target, medmat's parser as metric.

``medmat export-task`` copies this file beside the task YAML as ``medmat_hooks.py``, with
:mod:`medmat_builder.evaluate.parsing` and :mod:`medmat_builder.evaluate.grounding` as
``medmat_parsing.py`` and ``medmat_grounding.py`` (read from the installed package), so the task
folder runs wherever lmms-eval runs, without medmat installed. The scores equal ``eval/evaluate.py``'s
on the same answers: the same deterministic parsers decide.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

if __package__:  # imported as medmat_builder.evaluate.lmms_hooks
    from .grounding import match_boxes, parse_boxes, reference_boxes
    from .parsing import parse_letter
else:  # loaded by lmms-eval from a task folder: the copies lie beside this file
    _here = os.path.dirname(os.path.abspath(__file__))
    if _here not in sys.path:
        sys.path.insert(0, _here)
    from medmat_grounding import match_boxes, parse_boxes, reference_boxes  # type: ignore[no-redef]
    from medmat_parsing import parse_letter  # type: ignore[no-redef]


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """The record's image, as RGB."""
    image = doc["image"]
    return [image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The record's question (instruction, lettered options or box format, answer directive) as built."""
    kw = lmms_eval_specific_kwargs or {}
    return f"{kw.get('pre_prompt', '')}{doc['question']}{kw.get('post_prompt', '')}"


def doc_to_target(doc: dict[str, Any]) -> str:
    """The reference answer: an option letter, or the box text."""
    return str(doc["answer"])


def process_choice(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """Per item: right (1/0) by :func:`parse_letter`, and whether the answer was unparseable."""
    parsed = parse_letter(results[0] if results else None, doc.get("options") or None)
    return {"accuracy": float(parsed is not None and parsed == doc["answer"]), "unparseable": float(parsed is None)}


def process_grounding(doc: dict[str, Any], results: Sequence[str]) -> dict[str, Any]:
    """Per item: right at IoU >= 0.5 (every reference object matched), and object counts for the ratios."""
    read = parse_boxes(results[0] if results else None)
    ref = reference_boxes(doc.get("boxes") or [])
    m = match_boxes(read[1], ref) if read is not None else None
    matched = m.matched if m else 0
    return {
        "accuracy_iou50": float(m is not None and m.correct),
        "mean_iou": (sum(m.ref_ious) if m else 0.0, len(ref)),
        "precision": (matched, m.n_pred if m else 0),
        "recall": (matched, len(ref)),
        "unparseable": float(read is None),
    }


def ratio(items: Sequence[tuple[float, float]]) -> float:
    """Aggregate (numerator, denominator) pairs into one ratio over all items (0 when empty)."""
    den = sum(b for _, b in items)
    return sum(a for a, _ in items) / den if den else 0.0


def total(items: Sequence[float]) -> float:
    """Aggregate by summing (counts such as unparseable answers)."""
    return float(sum(items))
