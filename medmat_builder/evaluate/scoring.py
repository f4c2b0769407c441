"""Prediction records and their tally into per-config results.

Every number in ``results.json`` is computed by :func:`tally` from the prediction records alone, so a
predictions file can always be re-scored (``--predictions``) and audited line by line.

Multiple-choice configs report accuracy with its Wilson 95% interval, the chance level, the
majority-letter level and the letter-bias check (:mod:`.stats`); with circular evaluation also
the circular accuracy (an item is right only when every rotation is right) with its own n and interval.
Grounding configs report accuracy at IoU >= 0.5 (every reference object matched), mean IoU, and
precision / recall of objects (:mod:`.grounding`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import stats
from .grounding import BoxMatch, format_boxes, match_boxes, parse_boxes, reference_boxes
from .parsing import parse_letter


@dataclass
class Prediction:
    """One scored item: what was asked, what the model said, and how it was read.

    ``parsed`` is the option letter (choice) or the boxes read, in the plain style (grounding);
    ``None`` when the answer is unparseable.
    """

    id: str
    config: str
    prompt: str
    raw_output: str | None
    parsed: str | None
    gold: str
    gold_label: str = ""
    options: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None  # likelihood mode: log-prob per letter
    process: int | None = None  # rank of the process that scored the item (data-parallel audit)
    task: str = "choice"  # or "grounding"
    boxes: list[dict[str, Any]] | None = None  # grounding: the reference boxes
    rotation: int | None = None  # circular evaluation: which rotation of the options was asked

    def box_match(self) -> BoxMatch | None:
        """Grounding: the matching of the parsed boxes to the reference (None if unparseable or choice)."""
        if self.task != "grounding" or self.parsed is None:
            return None
        read = parse_boxes(self.parsed)
        return match_boxes(read[1] if read else [], reference_boxes(self.boxes or []))

    @property
    def correct(self) -> bool:
        if self.task == "grounding":
            m = self.box_match()
            return m is not None and m.correct
        return self.parsed is not None and self.parsed == self.gold

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["correct"] = self.correct
        for key in ("scores", "boxes", "rotation"):
            if d[key] is None:
                del d[key]
        m = self.box_match()
        if m is not None:
            d["matched"], d["ref_ious"] = m.matched, [round(x, 4) for x in m.ref_ious]
        return d


def parse_answer(raw: str | None, task: str, options: Sequence[str] | None) -> str | None:
    """The deterministic reading of a raw answer: a letter (choice) or plain-style boxes (grounding)."""
    if task == "grounding":
        read = parse_boxes(raw)
        return None if read is None else format_boxes(read[1])
    return parse_letter(raw, options or None)


def prediction_from_json(obj: dict[str, Any], reparse: bool = True) -> Prediction:
    """A :class:`Prediction` from one predictions.jsonl line; ``reparse`` re-reads ``raw_output``."""
    missing = [k for k in ("id", "config", "gold") if k not in obj]
    if missing:
        raise ValueError(f"prediction line lacks required field(s) {missing}: {obj!r}")
    options = list(obj.get("options") or [])
    task = obj.get("task", "choice")
    if task not in ("choice", "grounding"):
        raise ValueError(f"prediction line has unknown task {task!r} (choice or grounding): {obj!r}")
    raw = obj.get("raw_output")
    parsed = obj.get("parsed")
    if reparse and raw is not None:
        parsed = parse_answer(raw, task, options)
    return Prediction(
        id=str(obj["id"]), config=str(obj["config"]), prompt=obj.get("prompt", ""), raw_output=raw,
        parsed=parsed, gold=str(obj["gold"]), gold_label=obj.get("gold_label", ""), options=options,
        scores=obj.get("scores"), process=obj.get("process"), task=task, boxes=obj.get("boxes"),
        rotation=obj.get("rotation"),
    )


def write_predictions(preds: Iterable[Prediction], path: str | Path) -> None:
    """Write one JSON object per line, in the order given."""
    with open(path, "w", encoding="utf-8") as fh:
        for p in preds:
            fh.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")


def read_predictions(path: str | Path, reparse: bool = True) -> list[Prediction]:
    """Read a predictions.jsonl file; blank lines are skipped, malformed lines raise with their number."""
    out: list[Prediction] = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not valid JSON ({exc})") from exc
            out.append(prediction_from_json(obj, reparse=reparse))
    return out


def check_unique(preds: Sequence[Prediction]) -> None:
    """Raise if an item (config, id, rotation) appears twice: it would be counted twice."""
    seen = Counter((p.config, p.id, p.rotation or 0) for p in preds)
    dups = [k for k, n in seen.items() if n > 1]
    if dups:
        raise ValueError(f"{len(dups)} item(s) appear more than once, e.g. {dups[:3]}; refusing to double count")


def plain(preds: Sequence[Prediction]) -> list[Prediction]:
    """The predictions of the items as written (rotation 0 or no rotation)."""
    return [p for p in preds if not p.rotation]


def correct_by_id(preds: Sequence[Prediction], circular: bool = False) -> dict[str, bool]:
    """Item id -> right; ``circular``: right only when every rotation of the item is right."""
    if not circular:
        return {p.id: p.correct for p in plain(preds)}
    out: dict[str, bool] = {}
    for p in preds:
        out[p.id] = out.get(p.id, True) and p.correct
    return out


def _accuracy(correct: int, n: int) -> dict[str, Any]:
    lo, hi = stats.wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0, "ci95": [lo, hi]}


def _per_label(items: Sequence[Prediction]) -> dict[str, dict[str, Any]]:
    labels: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in items:
        labels[p.gold_label or p.gold][0] += 1
        labels[p.gold_label or p.gold][1] += int(p.correct)
    return {lab: {"n": a, "correct": c, "accuracy": c / a} for lab, (a, c) in sorted(labels.items())}


def tally_choice(preds: Sequence[Prediction]) -> dict[str, Any]:
    """Accuracy, interval, chance / majority levels, letter bias and (if rotated) circular accuracy."""
    items = plain(preds)
    n = len(items)
    letter, majority = stats.majority_level([p.gold for p in items])
    top, share = stats.top_answer_share([p.parsed for p in preds])
    out = {
        "task": "choice",
        **_accuracy(sum(p.correct for p in items), n),
        "unparseable": sum(p.parsed is None for p in items),
        "chance": stats.chance_level([len(p.options) for p in items]),
        "majority_letter": letter,
        "majority_accuracy": majority,
        "top_answer": top,
        "top_answer_share": share,
        "letter_bias": share > stats.LETTER_BIAS_SHARE,
        "per_label": _per_label(items),
    }
    if any(p.rotation is not None for p in preds):
        right = correct_by_id(preds, circular=True)
        asked = Counter(p.id for p in preds)
        short = [p.id for p in items if asked[p.id] != max(len(p.options), 1)]
        if short:
            raise ValueError(f"circular evaluation: item(s) {short[:3]} lack some rotations; re-run with --circular")
        out["circular"] = {
            **_accuracy(sum(right.values()), len(right)),
            "rotations": len(preds),
            "unparseable": sum(p.parsed is None for p in preds),
            "chance": stats.circular_chance_level([len(p.options) for p in items]),
        }
    return out


def tally_grounding(preds: Sequence[Prediction]) -> dict[str, Any]:
    """Accuracy at IoU >= 0.5 with its interval, mean IoU over reference objects, object precision/recall."""
    matches = [p.box_match() for p in preds]
    ref = sum(len(p.boxes or []) for p in preds)
    got = [m for m in matches if m is not None]
    predicted = sum(m.n_pred for m in got)
    matched = sum(m.matched for m in got)
    iou_sum = sum(sum(m.ref_ious) for m in got)
    return {
        "task": "grounding",
        **_accuracy(sum(p.correct for p in preds), len(preds)),
        "unparseable": sum(m is None for m in matches),
        "iou_threshold": got[0].threshold if got else 0.5,
        "mean_iou": iou_sum / ref if ref else None,
        "objects": {"reference": ref, "predicted": predicted, "matched": matched},
        "precision": matched / predicted if predicted else None,
        "recall": matched / ref if ref else None,
        "per_label": _per_label(preds),
    }


def tally(preds: Sequence[Prediction]) -> dict[str, dict[str, Any]]:
    """Per config: :func:`tally_choice` or :func:`tally_grounding` of its predictions."""
    check_unique(preds)
    by_config: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        by_config[p.config].append(p)
    results: dict[str, dict[str, Any]] = {}
    for config in sorted(by_config):
        items = by_config[config]
        tasks = {p.task for p in items}
        if len(tasks) > 1:
            raise ValueError(f"config {config!r} has both choice and grounding predictions; score them apart")
        results[config] = tally_grounding(items) if tasks == {"grounding"} else tally_choice(items)
    return results


def overall(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Micro-averaged totals over configs (macro average given too)."""
    n = sum(r["n"] for r in results.values())
    correct = sum(r["correct"] for r in results.values())
    accs = [r["accuracy"] for r in results.values()]
    return {
        **_accuracy(correct, n),
        "macro_accuracy": sum(accs) / len(accs) if accs else 0.0,
        "unparseable": sum(r["unparseable"] for r in results.values()),
    }
