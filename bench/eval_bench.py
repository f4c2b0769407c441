"""Evaluation throughput: likelihood scoring vs per-sample generation, same model, same items, one run.

    python bench/eval_bench.py                                  # tiny random LLaVA + tiny synthetic export
    python bench/eval_bench.py --model_name_or_path PATH --dataset_name ./medmat --configs subset_28 --limit 200

Prints one table: mode, batch size, items, seconds, samples/s, accuracy, unparseable. Generation runs
one item at a time (what many public evaluators do) and, for comparison, batched; likelihood scores
all options of a batch of items in one forward. The default tiny model measures overheads only; its
accuracy means nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from medmat_builder.evaluate.items import load_items  # noqa: E402
from medmat_builder.evaluate.runner import load_scorer, score_items  # noqa: E402
from medmat_builder.evaluate.scoring import tally  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name_or_path", help="default: a tiny random LLaVA made in a temp folder")
    p.add_argument("--dataset_name", help="default: a tiny synthetic export made in a temp folder")
    p.add_argument("--configs", nargs="+", default=["subset_28"])
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_new_tokens", type=int, default=8)
    p.add_argument("--dtype", default="auto")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        model, data = args.model_name_or_path, args.dataset_name
        if model is None:
            from medmat_builder.evaluate.testing import tiny_model

            model = str(tiny_model(Path(tmp) / "tiny-llava"))
        if data is None:
            from medmat_builder.evaluate.testing import make_tiny_export

            data = str(make_tiny_export(Path(tmp) / "bench-export", args.configs, n_train=1, n_test=args.limit))
        items, _ = load_items(data, args.configs, limit=args.limit)
        scorer = load_scorer(model, dtype=args.dtype)
        score_items(scorer, items[:2], mode="likelihood", batch_size=2)  # warm-up
        score_items(scorer, items[:1], mode="generate", batch_size=1, max_new_tokens=2)
        runs = [("generate", 1), ("generate", args.batch_size), ("likelihood", 1), ("likelihood", args.batch_size)]
        rows = []
        for mode, bs in runs:
            start = time.perf_counter()
            pairs = score_items(scorer, items, mode=mode, batch_size=bs, max_new_tokens=args.max_new_tokens)
            secs = time.perf_counter() - start
            res = tally([pr for _, pr in pairs])
            n = sum(r["n"] for r in res.values())
            correct = sum(r["correct"] for r in res.values())
            unparse = sum(r["unparseable"] for r in res.values())
            rows.append((mode, bs, n, secs, n / secs, correct / n, unparse))
    print(f"model: {model}\ndata: {data} {' '.join(args.configs)} (device {scorer.device})")
    print(f"| {'mode':<10} | {'batch':>5} | {'items':>5} | {'seconds':>8} | {'samples/s':>9} | {'accuracy':>8} | unparseable |")
    print("|" + "|".join(["---"] * 7) + "|")
    for mode, bs, n, secs, rate, acc, unparse in rows:
        print(f"| {mode:<10} | {bs:>5} | {n:>5} | {secs:>8.2f} | {rate:>9.1f} | {acc:>8.3f} | {unparse:>11} |")
    base = rows[0][4]
    print(f"likelihood (batch {args.batch_size}) vs per-sample generation: {rows[3][4] / base:.1f}x samples/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
