"""Grounding answers: read predicted boxes in every box style, match them to the reference boxes.

Box styles read (coordinates end up on the 0-1000 grid of ``medmat_builder.records.SCALE``):

* **plain**, what ``medmat build`` writes (``medmat_builder.build.boxes.format_box_answer``):
  ``label: [x1, y1, x2, y2]; label: [x1, y1, x2, y2]``, integers 0-1000; a box without ``label:``
  is unlabelled; ``none`` means no object;
* **Qwen2-VL**: ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``,
  0-1000, several boxes may follow one label; also with the special tokens stripped by decoding
  (``label(x1,y1),(x2,y2)``);
* **MiniGPT-v2**: ``<p>label</p> {<x1><y1><x2><y2>}``, a 0-100 grid (multiplied by 10), boxes of one
  phrase joined by ``<delim>``.

A text in which none of these styles finds a box, and which is not ``none``, is *unparseable*: scored
wrong and counted, never dropped. Coordinates are read as written: corners are put in order and
clamped to the image (0-1000) before IoU; a box with no area (or entirely outside the image)
matches nothing.

Matching is one-to-one (``scipy.optimize.linear_sum_assignment``): first as many pairs with
IoU >= the threshold as possible, then the largest total IoU. A labelled prediction pairs only with
a reference of the same label (case and spacing ignored); an unlabelled one pairs with any.
This module imports nothing of medmat, so ``medmat export-task`` can ship it beside an lmms-eval task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GRID = 1000  # the coordinate grid of medmat_builder.records.SCALE; a test keeps the two equal
NO_OBJECT = "none"  # medmat_builder.records.NO_BOX_ANSWER; a test keeps the two equal
IOU_THRESHOLD = 0.5

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PLAIN = re.compile(rf"(?:([^\[\];\n]*?)\s*:\s*)?\[{_NUM},{_NUM},{_NUM},{_NUM}\]")
_QWEN_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>", re.S)
_QWEN_BOX = re.compile(rf"(?:<\|box_start\|>)?\({_NUM},{_NUM}\)\s*,\s*\({_NUM},{_NUM}\)(?:<\|box_end\|>)?")
_MINIGPT_REF = re.compile(r"<p>(.*?)</p>", re.S)
_MINIGPT_BOX = re.compile(r"\{\s*<(\d+)>\s*<(\d+)>\s*<(\d+)>\s*<(\d+)>\s*\}")
_STRIP_LABEL = " \t\r\n,;:.-*\"'`"


@dataclass(frozen=True)
class PredBox:
    """One box on the 0-1000 grid, with its label ('' when the answer gave none)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    def clipped(self) -> tuple[float, float, float, float]:
        """Corners in order and clamped to the image: ``(x1, y1, x2, y2)`` with x1 <= x2, y1 <= y2."""
        xa, xb = sorted((self.x1, self.x2))
        ya, yb = sorted((self.y1, self.y2))
        return (_clamp(xa), _clamp(ya), _clamp(xb), _clamp(yb))


def _clamp(v: float) -> float:
    return float(min(GRID, max(0, v)))


def _label(text: str | None) -> str:
    return (text or "").strip(_STRIP_LABEL)


def _label_key(label: str) -> str:
    return " ".join(label.split()).casefold()


def _boxes_after_refs(text: str, ref: re.Pattern[str], box: re.Pattern[str], scale: float) -> list[PredBox]:
    """Boxes in reading order, each labelled by the last reference phrase before it."""
    refs = [(m.end(), _label(m.group(1))) for m in ref.finditer(text)]
    out = []
    for m in box.finditer(text):
        label = next((lab for end, lab in reversed(refs) if end <= m.start()), "")
        x1, y1, x2, y2 = (float(g) * scale for g in m.groups())
        out.append(PredBox(label, x1, y1, x2, y2))
    return out


def _qwen_stripped(text: str) -> list[PredBox]:
    """Qwen2-VL boxes whose special tokens were stripped: the label is the text before each box."""
    out, start = [], 0
    for m in _QWEN_BOX.finditer(text):
        x1, y1, x2, y2 = (float(g) for g in m.groups())
        out.append(PredBox(_label(re.split(r"[;\n]", text[start : m.start()])[-1]), x1, y1, x2, y2))
        start = m.end()
    return out


def parse_boxes(text: str | None) -> tuple[str, list[PredBox]] | None:
    """``(style, boxes)`` read from a free-text answer, or ``None`` when it is unparseable.

    ``style`` is ``plain``, ``qwen2_vl``, ``minigpt_v2`` or ``none`` (the answer says no object).
    """
    if text is None:
        return None
    s = text.strip()
    if s.strip(" .\"'`*").casefold() == NO_OBJECT:
        return "none", []
    if "<|object_ref_start|>" in s or "<|box_start|>" in s:
        boxes = _boxes_after_refs(s, _QWEN_REF, _QWEN_BOX, 1.0)
        if boxes:
            return "qwen2_vl", boxes
    if "{<" in s.replace(" ", ""):
        boxes = _boxes_after_refs(s, _MINIGPT_REF, _MINIGPT_BOX, GRID / 100)
        if boxes:
            return "minigpt_v2", boxes
    plain = [PredBox(_label(m.group(1)), *(float(g) for g in m.groups()[1:])) for m in _PLAIN.finditer(s)]
    if plain:
        return "plain", plain
    stripped = _qwen_stripped(s)
    if stripped:
        return "qwen2_vl", stripped
    return None


def format_boxes(boxes: Iterable[PredBox]) -> str:
    """The plain style of ``boxes`` (numbers as read, ``:g``); no box gives ``none``. Parses back equal."""
    parts = []
    for b in boxes:
        coords = ", ".join(f"{v:g}" for v in (b.x1, b.y1, b.x2, b.y2))
        parts.append(f"{b.label}: [{coords}]" if b.label else f"[{coords}]")
    return "; ".join(parts) if parts else NO_OBJECT


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes with ordered corners; 0 without area."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_boxes(rows: Iterable[Mapping[str, Any]]) -> list[PredBox]:
    """The ``boxes`` field of a dataset row (dicts with label, x1, y1, x2, y2) as :class:`PredBox`."""
    return [PredBox(str(r.get("label") or ""), float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))
            for r in rows]


@dataclass(frozen=True)
class BoxMatch:
    """The one-to-one matching of an item's predicted boxes to its reference boxes."""

    n_pred: int
    n_ref: int
    pairs: list[tuple[int, int, float]] = field(default_factory=list)  # (pred index, ref index, IoU)
    threshold: float = IOU_THRESHOLD

    @property
    def matched(self) -> int:
        """Pairs with IoU >= threshold (true positives)."""
        return sum(iou >= self.threshold for _, _, iou in self.pairs)

    @property
    def ref_ious(self) -> list[float]:
        """Per reference object: the IoU of its assigned prediction, 0 when none was assigned."""
        ious = [0.0] * self.n_ref
        for _, r, iou in self.pairs:
            ious[r] = iou
        return ious

    @property
    def correct(self) -> bool:
        """Every reference object matched at the threshold; an item without objects needs no box."""
        return self.matched == self.n_ref if self.n_ref else self.n_pred == 0


def match_boxes(pred: Sequence[PredBox], ref: Sequence[PredBox], threshold: float = IOU_THRESHOLD) -> BoxMatch:
    """Match ``pred`` to ``ref`` one-to-one: most pairs at IoU >= ``threshold``, then the largest total IoU."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if not pred or not ref:
        return BoxMatch(len(pred), len(ref), [], threshold)
    iou = np.zeros((len(pred), len(ref)))
    for i, p in enumerate(pred):
        for j, r in enumerate(ref):
            if not p.label or _label_key(p.label) == _label_key(r.label):
                iou[i, j] = box_iou(p.clipped(), r.clipped())
    weight = iou + (min(len(pred), len(ref)) + 1) * (iou >= threshold)  # a pair at threshold outweighs any IoU sum
    rows, cols = linear_sum_assignment(weight, maximize=True)
    pairs = [(int(i), int(j), float(iou[i, j])) for i, j in zip(rows, cols) if iou[i, j] > 0]
    return BoxMatch(len(pred), len(ref), pairs, threshold)
