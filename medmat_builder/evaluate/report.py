"""Tables and plots of compositional-generalization experiments, from result files alone.

An experiment folder (written by :mod:`medmat_builder.evaluate.experiments`) holds one folder per
evaluated run with

* ``arm.json``: ``{"arm", "target", "combination", "checkpoint", "series", "figure", "volume"}``;
* ``results.json`` and ``predictions.jsonl``: written by ``eval/evaluate.py``.

This module reads only those files, so a table can be re-rendered, or runs from different machines
merged, without a model::

    python eval/report.py runs/micro-cg     # or python -m medmat_builder.evaluate.report runs/micro-cg

The Table-3-style table has one row per target and metric (``accuracy``; ``circular`` too when the
runs were evaluated with ``--circular``): n, the chance and majority-letter levels, one column per
arm (accuracy in % with its Wilson 95% interval), the paired exact McNemar p-value of every
comparison (Trained vs Baseline, Trained vs Baseline+, X Related vs X Unrelated), and ``success``:
Trained above both Baseline and Baseline+ *and* both differences significant at the spec's
``alpha`` (default 0.05), judged on circular accuracy when it was measured, else on accuracy.
Warnings under the table name runs whose answers are mostly one letter. Volume runs
(``series``/``figure`` set) become Figure 5/6-style tables and curves with interval bars.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmat_builder.evaluate import stats

SUCCESS_ARMS = ("Baseline", "Baseline+", "Trained")
METRICS = ("accuracy", "circular")


@dataclass
class Run:
    """One evaluated (arm, target) pair: its scores and where its predictions are."""

    arm: str
    target: str
    accuracy: float
    n: int
    unparseable: int
    combination: str = ""
    series: str | None = None
    figure: str | None = None
    volume: int | None = None
    xlabel: str | None = None
    path: str = ""
    correct: int = 0
    chance: float | None = None
    majority_letter: str | None = None
    majority_accuracy: float | None = None
    top_answer: str | None = None
    top_answer_share: float = 0.0
    circular: dict[str, Any] | None = None  # n, correct, accuracy, ci95, chance
    _items: dict[str, dict[str, bool]] = field(default_factory=dict, repr=False)

    def score(self, metric: str) -> dict[str, Any] | None:
        """``{"n", "correct", "accuracy", "ci95", "chance"}`` of ``metric`` (None if not measured)."""
        if metric == "circular":
            return self.circular
        lo, hi = stats.wilson_interval(self.correct, self.n)
        return {"n": self.n, "correct": self.correct, "accuracy": self.accuracy, "ci95": [lo, hi], "chance": self.chance}

    def item_correct(self, metric: str) -> dict[str, bool] | None:
        """Item id -> right for ``metric``, from ``predictions.jsonl`` (None when the file is missing)."""
        if metric not in self._items:
            from medmat_builder.evaluate.scoring import correct_by_id, read_predictions

            path = Path(self.path) / "predictions.jsonl"
            if not path.is_file():
                return None
            preds = [p for p in read_predictions(path) if p.config == self.target]
            self._items["accuracy"] = correct_by_id(preds)
            self._items["circular"] = correct_by_id(preds, circular=True)
        return self._items[metric]

    @property
    def letter_bias(self) -> bool:
        return self.top_answer_share > stats.LETTER_BIAS_SHARE


def read_run(folder: str | Path) -> list[Run]:
    """The runs recorded in ``folder`` (``arm.json`` + ``results.json``); one per target evaluated."""
    folder = Path(folder)
    meta = json.loads((folder / "arm.json").read_text())
    results_path = folder / meta.get("results", "results.json")
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} is missing: was the evaluation of {folder} interrupted? Re-run it.")
    results = json.loads(results_path.read_text())
    targets = meta.get("targets") or [meta["target"]]
    combination = meta.get("combination")
    runs = []
    for target in targets:
        if target not in results["configs"]:
            raise ValueError(f"{results_path} has no result for target {target!r}")
        r = results["configs"][target]
        runs.append(
            Run(
                arm=meta["arm"], target=target, accuracy=r["accuracy"], n=r["n"], unparseable=r["unparseable"],
                combination=(combination or {}).get(target, "") if isinstance(combination, dict) else combination or "",
                series=meta.get("series"), figure=meta.get("figure"), volume=meta.get("volume"),
                xlabel=meta.get("xlabel"), path=str(folder), correct=r.get("correct", round(r["accuracy"] * r["n"])),
                chance=r.get("chance"), majority_letter=r.get("majority_letter"),
                majority_accuracy=r.get("majority_accuracy"), top_answer=r.get("top_answer"),
                top_answer_share=r.get("top_answer_share", 0.0), circular=r.get("circular"),
            )
        )
    return runs


def collect_runs(root: str | Path) -> list[Run]:
    """Every run under ``root`` (any depth), in a stable order."""
    runs: list[Run] = []
    for arm_file in sorted(Path(root).rglob("arm.json")):
        runs.extend(read_run(arm_file.parent))
    return runs


def comparisons(arms: Sequence[str]) -> list[tuple[str, str]]:
    """The paired comparisons among ``arms``: Trained vs Baseline(+), and each X Related vs X Unrelated."""
    out = [("Trained", b) for b in ("Baseline", "Baseline+") if "Trained" in arms and b in arms]
    for a in arms:
        if "Unrelated" in a and a.replace("Unrelated", "Related") in arms:
            out.append((a.replace("Unrelated", "Related"), a))
    return out


def compare(a: Run, b: Run, metric: str) -> stats.PairedComparison | None:
    """Paired exact McNemar test of two runs on the same items (None without predictions)."""
    ia, ib = a.item_correct(metric), b.item_correct(metric)
    if ia is None or ib is None:
        return None
    return stats.paired_comparison(ia, ib)


def p_column(a: str, b: str) -> str:
    return f"p {a} vs {b}"


def cg_table(
    runs: Sequence[Run], arm_order: Sequence[str] | None = None, alpha: float = stats.DEFAULT_ALPHA
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of the Table-3-style table (volume runs excluded).

    One row per target and metric. Row keys: ``combination``, ``target``, ``metric``, ``n``,
    ``chance``, ``majority``, ``majority_letter``, one per arm (``{"accuracy", "ci95", "n", "correct"}``
    or None), one ``p A vs B`` per comparison (``{"p_value", ...}`` or None), ``decides`` (this
    metric judges success) and ``success`` (True/False on the deciding row when Baseline, Baseline+
    and Trained all exist, else None).
    """
    main = [r for r in runs if r.series is None]
    arms: list[str] = list(arm_order or [])
    for r in main:
        if r.arm not in arms:
            arms.append(r.arm)
    pairs = comparisons(arms)
    by_target: dict[str, dict[str, Run]] = defaultdict(dict)
    for r in main:
        by_target[r.target][r.arm] = r
    rows = []
    for target in sorted(by_target):
        got = by_target[target]
        trained = got.get("Trained")
        combination = trained.combination if trained else next((r.combination for r in got.values() if r.combination), "")
        metrics = [m for m in METRICS if all(r.score(m) is not None for r in got.values())]
        for metric in metrics:
            first = next(got[a] for a in arms if a in got)
            row: dict[str, Any] = {
                "combination": combination, "target": target, "metric": metric,
                "n": sorted({r.score(metric)["n"] for r in got.values()}),
                "chance": first.score(metric)["chance"],
                "majority": first.majority_accuracy if metric == "accuracy" else 0.0,
                "majority_letter": first.majority_letter if metric == "accuracy" else None,
            }
            for arm in arms:
                row[arm] = got[arm].score(metric) if arm in got else None
            for a, b in pairs:
                cmp = compare(got[a], got[b], metric) if a in got and b in got else None
                row[p_column(a, b)] = cmp.to_json() if cmp else None
            row["decides"] = metric == metrics[-1]
            row["success"] = _success(row, alpha) if row["decides"] else None
            rows.append(row)
    columns = ["combination", "target", "metric", "n", "chance", "majority", *arms,
               *(p_column(a, b) for a, b in pairs), "success"]
    return columns, rows


def _success(row: dict[str, Any], alpha: float) -> bool | None:
    if any(row.get(a) is None for a in SUCCESS_ARMS):
        return None
    tests = [row.get(p_column("Trained", b)) for b in ("Baseline", "Baseline+")]
    if any(t is None for t in tests):
        return None
    t = row["Trained"]["accuracy"]
    return all(t > row[b]["accuracy"] for b in ("Baseline", "Baseline+")) and all(x["p_value"] < alpha for x in tests)


def warnings(runs: Sequence[Run]) -> list[str]:
    """Letter bias (more than 90% of answers one letter) and unparseable answers, per run."""
    out = []
    for r in runs:
        where = f"{r.arm} on {r.target}" + (f" at volume {r.volume}" if r.volume is not None else "")
        if r.letter_bias:
            out.append(f"{where}: {100 * r.top_answer_share:.0f}% of the answers are {r.top_answer!r} (letter bias: "
                       f"its accuracy follows that letter's share of correct answers)")
        if r.unparseable:
            out.append(f"{where}: {r.unparseable} of {r.n} answers unparseable (scored wrong)")
    return out


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _cell(c: str, v: Any) -> str:
    if c == "success":
        return "" if v is None else ("🟩 yes" if v else "🟥 no")
    if c in ("combination", "target", "metric", "volume"):
        return "" if v is None else str(v)
    if c == "n":
        return "/".join(map(str, v))
    if c in ("chance", "majority"):
        return _pct(v)
    if c.startswith("p "):
        return "" if v is None else ("<0.001" if v["p_value"] < 0.001 else f"{v['p_value']:.3f}")
    if v is None:
        return ""
    return f"{_pct(v['accuracy'])} [{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]"


def to_markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]], notes: Sequence[str] = ()) -> str:
    """A GitHub markdown table; accuracies in % with [95% CI], success as 🟩 yes / 🟥 no; notes below."""
    names = {"combination": "Related combination", "target": "Target subset", "chance": "chance",
             "majority": "majority letter"}
    head = [names.get(c, c) for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    previous = None
    for row in rows:
        cells = [_cell(c, row.get(c)) for c in columns]
        if "combination" in columns and (row.get("target"), row.get("combination")) == previous:
            cells[columns.index("combination")] = "〃"  # same target, next metric
        if "majority" in columns and row.get("majority_letter"):
            cells[columns.index("majority")] += f" ({row['majority_letter']})"
        previous = (row.get("target"), row.get("combination"))
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if notes:
        out += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return out


def _flat(columns: Sequence[str], row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in columns:
        v = row.get(c)
        if isinstance(v, dict) and "ci95" in v:
            out[c], out[f"{c} ci_low"], out[f"{c} ci_high"] = v["accuracy"], *v["ci95"]
        elif isinstance(v, dict):
            out[c] = v["p_value"]
        elif c == "n":
            out[c] = "/".join(map(str, v))
        else:
            out[c] = v
    return out


def write_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """CSV with accuracies as fractions plus ``<arm> ci_low/ci_high``, p-values, success true/false/empty."""
    flat = [_flat(columns, r) for r in rows]
    header = list(flat[0]) if flat else list(columns)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in flat:
            w.writerow(["" if row.get(c) is None else ("true" if row[c] is True else "false" if row[c] is False
                                                       else row[c]) for c in header])


def volume_curves(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """figure -> series -> its runs sorted by volume."""
    figs: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.series is not None and r.volume is not None:
            figs[r.figure or "volume"][r.series].append(r)
    return {f: {s: sorted(p, key=lambda r: r.volume or 0) for s, p in sorted(ss.items())} for f, ss in sorted(figs.items())}


def volume_rows(curves: dict[str, list[Run]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per volume: each series' accuracy with interval, and Related vs Unrelated p-values."""
    series = list(curves)
    pairs = comparisons(series)
    by_volume: dict[int, dict[str, Run]] = defaultdict(dict)
    for name, points in curves.items():
        for r in points:
            by_volume[r.volume or 0][name] = r
    rows = []
    for volume in sorted(by_volume):
        got = by_volume[volume]
        first = next(iter(got.values()))
        row: dict[str, Any] = {"volume": volume, "n": sorted({r.n for r in got.values()}), "chance": first.chance}
        for name in series:
            row[name] = got[name].score("accuracy") if name in got else None
        for a, b in pairs:
            cmp = compare(got[a], got[b], "accuracy") if a in got and b in got else None
            row[p_column(a, b)] = cmp.to_json() if cmp else None
        rows.append(row)
    return ["volume", "n", "chance", *series, *(p_column(a, b) for a, b in pairs)], rows


def table_note(alpha: float) -> str:
    """The note under every CG table: what the numbers are and when a row counts as a success."""
    return (f"Accuracy in % with its Wilson 95% interval; n items per arm; p: paired exact McNemar on the same "
            f"items; success: Trained above Baseline and Baseline+ with both p < {alpha:g}, judged on the metric "
            "of the row that shows it (circular when measured).")


def spec_alpha(root: Path) -> float:
    """The significance level of the experiment (``alpha`` in its spec.yaml), else 0.05."""
    import yaml

    spec = root / "spec.yaml"
    data = yaml.safe_load(spec.read_text()) if spec.is_file() else None
    return float((data or {}).get("alpha") or stats.DEFAULT_ALPHA)


def render(
    root: str | Path, out_dir: str | Path | None = None, arm_order: Sequence[str] | None = None,
    alpha: float | None = None,
) -> dict[str, Any]:
    """Write ``table.md/.csv/.json``, ``cg_table.png`` and ``volume_<figure>.md/.png``; return paths and markdown.

    ``alpha``: the significance level for success (default: the experiment's spec.yaml, else 0.05).
    """
    from medmat_builder.evaluate import plots

    root = Path(root)
    out = Path(out_dir) if out_dir else root
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(root)
    if not runs:
        raise FileNotFoundError(f"no arm.json under {root}; run eval/experiment.py first")
    alpha = spec_alpha(root) if alpha is None else alpha
    columns, rows = cg_table(runs, arm_order, alpha)
    notes = [table_note(alpha), *warnings(runs)]
    md = to_markdown(columns, rows, notes) if rows else ""
    written: dict[str, Any] = {"markdown": md, "plots": []}
    summary: dict[str, Any] = {"alpha": alpha, "columns": columns, "rows": rows, "warnings": notes[1:], "volume": {}}
    if rows:
        (out / "table.md").write_text(md)
        write_csv(columns, rows, out / "table.csv")
        written["table_md"], written["table_csv"] = str(out / "table.md"), str(out / "table.csv")
        arms = [c for c in columns[6:] if not c.startswith("p ") and c != "success"]
        written["plots"].append(str(plots.plot_cg(rows, arms, out / "cg_table.png")))
    for figure, curves in volume_curves(runs).items():
        vcols, vrows = volume_rows(curves)
        summary["volume"][figure] = {"columns": vcols, "rows": vrows}
        (out / f"volume_{figure}.md").write_text(to_markdown(vcols, vrows))
        first = next(iter(curves.values()))[0]
        png = plots.plot_volume(curves, out / f"volume_{figure}.png", title=f"{figure}: target {first.target}",
                                xlabel=first.xlabel or "training samples")
        written["plots"].append(str(png))
    (out / "table.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    written["table_json"] = str(out / "table.json")
    return written


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Render the tables and plots of an experiment folder (``eval/report.py ROOT``)."""
    p = argparse.ArgumentParser(prog=prog, description="Render CG tables and volume plots from an experiment folder.")
    p.add_argument("root", help="experiment folder (holds */arm.json + */results.json)")
    p.add_argument("--out", help="where to write table.md, table.csv, table.json and plots (default: root)")
    p.add_argument("--alpha", type=float, help="significance level for success (default: the spec's, else 0.05)")
    args = p.parse_args(argv)
    written = render(args.root, args.out, alpha=args.alpha)
    print(written["markdown"], end="")
    for png in written["plots"]:
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    from medmat_builder.scripts import run_script

    run_script(main)
