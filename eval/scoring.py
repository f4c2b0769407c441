"""Prediction records and their tally into per-config accuracy.

Every number in ``results.json`` is computed by :func:`tally` from the prediction records alone, so a
predictions file can always be re-scored (``--predictions``) and audited line by line.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .parsing import parse_letter


@dataclass
class Prediction:
    """One scored item: what was asked, what the model said, and how it was read."""

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

    @property
    def correct(self) -> bool:
        return self.parsed is not None and self.parsed == self.gold

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["correct"] = self.correct
        if d["scores"] is None:
            del d["scores"]
        return d


def prediction_from_json(obj: dict[str, Any], reparse: bool = True) -> Prediction:
    """A :class:`Prediction` from one predictions.jsonl line; ``reparse`` re-reads ``raw_output``."""
    missing = [k for k in ("id", "config", "gold") if k not in obj]
    if missing:
        raise ValueError(f"prediction line lacks required field(s) {missing}: {obj!r}")
    options = list(obj.get("options") or [])
    raw = obj.get("raw_output")
    parsed = obj.get("parsed")
    if reparse and raw is not None:
        parsed = parse_letter(raw, options or None)
    return Prediction(
        id=str(obj["id"]), config=str(obj["config"]), prompt=obj.get("prompt", ""), raw_output=raw,
        parsed=parsed, gold=str(obj["gold"]), gold_label=obj.get("gold_label", ""), options=options,
        scores=obj.get("scores"), process=obj.get("process"),
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
    """Raise if an item (config, id) appears twice: it would be counted twice."""
    seen = Counter((p.config, p.id) for p in preds)
    dups = [k for k, n in seen.items() if n > 1]
    if dups:
        raise ValueError(f"{len(dups)} item(s) appear more than once, e.g. {dups[:3]}; refusing to double count")


def tally(preds: Sequence[Prediction]) -> dict[str, dict[str, Any]]:
    """Per config: n, correct, accuracy, unparseable, and per-label n/correct/accuracy (by gold label)."""
    check_unique(preds)
    by_config: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        by_config[p.config].append(p)
    results: dict[str, dict[str, Any]] = {}
    for config in sorted(by_config):
        items = by_config[config]
        n = len(items)
        correct = sum(p.correct for p in items)
        labels: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for p in items:
            labels[p.gold_label or p.gold][0] += 1
            labels[p.gold_label or p.gold][1] += int(p.correct)
        results[config] = {
            "n": n,
            "correct": correct,
            "accuracy": correct / n if n else 0.0,
            "unparseable": sum(p.parsed is None for p in items),
            "per_label": {
                lab: {"n": a, "correct": c, "accuracy": c / a} for lab, (a, c) in sorted(labels.items())
            },
        }
    return results


def overall(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Micro-averaged totals over configs (macro average given too)."""
    n = sum(r["n"] for r in results.values())
    correct = sum(r["correct"] for r in results.values())
    accs = [r["accuracy"] for r in results.values()]
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "macro_accuracy": sum(accs) / len(accs) if accs else 0.0,
        "unparseable": sum(r["unparseable"] for r in results.values()),
    }
