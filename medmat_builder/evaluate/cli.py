"""Per-config accuracy of a vision-language model on Med-MAT configs (multiple choice and grounding).

The command line of ``eval/evaluate.py``, ``medmat eval`` and ``python -m medmat_builder.evaluate``
(the same flags, the same behaviour). Examples::

    python eval/evaluate.py --model_name_or_path llava-hf/llava-1.5-7b-hf --dataset_name ./medmat \\
        --configs subset_28 subset_03 --mode likelihood --batch_size 16 --output_dir runs/eval
    python eval/evaluate.py ... --mixture related:subset_28      # the mixture's target (subset_28)
    python eval/evaluate.py ... --configs subset_28 --circular    # each item once per rotation of its options
    python eval/evaluate.py ... --configs subset_38 --mode generate  # grounding: boxes scored by IoU
    accelerate launch --num_processes 8 -m medmat_builder.evaluate ...  # data-parallel, one shard per process
    python eval/evaluate.py --predictions runs/eval/predictions.jsonl --output_dir runs/rescored

Writes ``OUT/results.json`` and ``OUT/predictions.jsonl`` (see docs/eval.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from medmat_builder.loading import MissingImagesError

from .items import load_items
from .runner import GROUNDING_MAX_NEW_TOKENS, MODES, gather_predictions, load_scorer, score_items, shard
from .scoring import Prediction, overall, read_predictions, tally, write_predictions


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of the evaluation command (``prog`` names it in ``--help``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", help="checkpoint folder or Hub id (AutoModelForImageTextToText)")
    p.add_argument("--dataset_name", help="export folder from `medmat build` or a Hub dataset id")
    p.add_argument("--configs", nargs="+", help="config names, e.g. subset_28 subset_03")
    p.add_argument("--mixture", help="a planner mixture (name such as related:subset_28, or a file from "
                   "`medmat plan --out`): evaluate its target, alone or added to --configs")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--mode", choices=MODES, default="generate",
                   help="generate: read the letter from greedy output; likelihood: score each option letter "
                        "(default: generate)")
    p.add_argument("--batch_size", type=int, default=8, help="items per forward pass (default: 8)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each config")
    p.add_argument("--max_new_tokens", type=int, default=16, help="generate mode, multiple-choice items")
    p.add_argument("--grounding_max_new_tokens", type=int, default=GROUNDING_MAX_NEW_TOKENS,
                   help="grounding items (always generated, in either mode)")
    p.add_argument("--circular", action="store_true",
                   help="ask each multiple-choice item once per rotation of its options; an item is right "
                        "only when every rotation is (reported beside plain accuracy)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--predictions", help="re-score this predictions.jsonl without a model")
    p.add_argument("--output_dir", required=True,
                   help="folder that results.json and predictions.jsonl are written to")
    return p


def write_results(
    out_dir: Path, preds: list[Prediction], meta: dict[str, Any], info: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Tally ``preds`` and write results.json and predictions.jsonl into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_config = tally(preds)
    for config, data in (info or {}).items():
        if config in per_config:
            per_config[config].update(
                split=data["split"], split_size=data["split_size"], dataset_fingerprint=data["fingerprint"]
            )
            if data.get("task") == "grounding" and meta.get("mode") == "likelihood":
                per_config[config]["scored_by"] = "generate"  # boxes have no options to score
    results = {**meta, "configs": per_config, "overall": overall(per_config)}
    write_predictions(preds, out_dir / "predictions.jsonl")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def rescore(args: argparse.Namespace) -> dict[str, Any]:
    preds = read_predictions(args.predictions, reparse=True)
    meta = {"model": None, "mode": "rescore", "predictions_source": str(Path(args.predictions).resolve())}
    return write_results(Path(args.output_dir), preds, meta)


def _want_cpu() -> bool:
    """CPU data-parallel: ``use_cpu`` requested, or several processes launched without a GPU.

    ``accelerate launch --multi_gpu --num_processes 2`` with ``use_cpu: true`` sets WORLD_SIZE but
    PartialState() alone would then fall back to one process per rank (each scoring everything).
    """
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def mixture_target(spec: str) -> str:
    """The target config of a planner mixture name or file (what a model trained on it is evaluated on)."""
    from medmat_builder.train.mixtures import resolve_mixture

    return resolve_mixture(spec).target


def evaluate(args: argparse.Namespace) -> dict[str, Any] | None:
    from accelerate import PartialState

    if args.mixture:
        target = mixture_target(args.mixture)
        args.configs = list(dict.fromkeys([*(args.configs or []), target]))
    missing = [f"--{k}" for k in ("model_name_or_path", "dataset_name", "configs") if not getattr(args, k)]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} required (or pass --predictions FILE to re-score)")
    state = PartialState(cpu=_want_cpu())
    try:
        items, info = load_items(args.dataset_name, args.configs, split=args.split, limit=args.limit,
                                 circular=args.circular)
    except MissingImagesError as err:  # a text-only payload: one line naming `medmat fill`
        raise SystemExit(f"error: {err}") from None
    mine = shard(items, state.process_index, state.num_processes)
    scorer = load_scorer(args.model_name_or_path, device=state.device, dtype=args.dtype)
    start = time.perf_counter()
    local = score_items(scorer, mine, mode=args.mode, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        grounding_max_new_tokens=args.grounding_max_new_tokens)
    for _, pred in local:
        pred.process = state.process_index
    preds = gather_predictions(local, total=len(items), state=state)
    elapsed = time.perf_counter() - start
    if not state.is_main_process:
        return None
    meta = {
        "model": args.model_name_or_path,
        "mode": args.mode,
        "dataset": args.dataset_name,
        "mixture": args.mixture,
        "split": args.split,
        "limit": args.limit,
        "circular": args.circular,
        "batch_size": args.batch_size,
        "num_processes": state.num_processes,
        "dataset_fingerprint": {c: d["fingerprint"] for c, d in info.items()},
        "seconds": round(elapsed, 3),
    }
    return write_results(Path(args.output_dir), preds, meta, info)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def summary(config: str, r: dict[str, Any]) -> str:
    """One line per config: accuracy with its 95% interval and the levels to read it against."""
    lo, hi = r["ci95"]
    head = f"{config}: accuracy {_pct(r['accuracy'])} [95% CI {_pct(lo)}-{_pct(hi)}] ({r['correct']}/{r['n']})"
    if r.get("task") == "grounding":
        miou = "n/a" if r["mean_iou"] is None else f"{r['mean_iou']:.3f}"
        return (f"{head} at IoU>={r['iou_threshold']}, mean IoU {miou}, "
                f"object precision {_pct(r['precision'])} recall {_pct(r['recall'])}, unparseable {r['unparseable']}")
    line = (f"{head}, chance {_pct(r['chance'])}, majority letter {r['majority_letter']} {_pct(r['majority_accuracy'])}, "
            f"unparseable {r['unparseable']}")
    if "circular" in r:
        c = r["circular"]
        line += (f"; circular {_pct(c['accuracy'])} [95% CI {_pct(c['ci95'][0])}-{_pct(c['ci95'][1])}] "
                 f"({c['correct']}/{c['n']}, chance {_pct(c['chance'])})")
    if r["letter_bias"]:
        line += (f"\n  WARNING: {_pct(r['top_answer_share'])} of the answers are {r['top_answer']!r}: "
                 "letter bias, the accuracy follows that letter's share of correct answers")
    return line


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Evaluate (or re-score) as the flags in ``argv`` say; prints one summary line per config."""
    args = build_parser(prog).parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = rescore(args) if args.predictions else evaluate(args)
    if results is not None:
        for config, r in results["configs"].items():
            print(summary(config, r))
        print(f"wrote {Path(args.output_dir) / 'results.json'}")
    return 0
