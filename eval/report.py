"""Tables and plots of compositional-generalization experiments, from result files alone.

An experiment folder (written by :mod:`eval.experiment`) holds one folder per evaluated run with

* ``arm.json``: ``{"arm", "target", "combination", "checkpoint", "series", "figure", "volume"}``;
* ``results.json``: written by ``eval/evaluate.py``.

This module reads only those files, so a table can be re-rendered, or runs from different machines
merged, without a model::

    python eval/report.py runs/micro-cg            # prints the table, writes table.md/.csv and PNGs

The Table-3-style table has one row per target: the training combination, one column per arm
(accuracy in %), and ``success``: Trained beats both Baseline and Baseline+ (the paper's green rows;
red when it does not). Volume runs (``series``/``figure`` set) become Figure 5/6-style curves.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUCCESS_ARMS = ("Baseline", "Baseline+", "Trained")
SERIES_COLORS = {"related": "#d62728", "unrelated": "#9467bd"}  # the paper's red and purple


@dataclass
class Run:
    """One evaluated (arm, target) pair."""

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


def read_run(folder: str | Path) -> list[Run]:
    """The runs recorded in ``folder`` (``arm.json`` + ``results.json``); one per target evaluated."""
    folder = Path(folder)
    meta = json.loads((folder / "arm.json").read_text())
    results_path = folder / meta.get("results", "results.json")
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} is missing: was the evaluation of {folder} interrupted? Re-run it.")
    results = json.loads(results_path.read_text())
    targets = meta.get("targets") or [meta["target"]]
    runs = []
    for target in targets:
        if target not in results["configs"]:
            raise ValueError(f"{results_path} has no result for target {target!r}")
        r = results["configs"][target]
        runs.append(
            Run(
                arm=meta["arm"], target=target, accuracy=r["accuracy"], n=r["n"], unparseable=r["unparseable"],
                combination=(meta.get("combination") or {}).get(target, "") if isinstance(meta.get("combination"), dict)
                else meta.get("combination") or "",
                series=meta.get("series"), figure=meta.get("figure"), volume=meta.get("volume"),
                xlabel=meta.get("xlabel"), path=str(folder),
            )
        )
    return runs


def collect_runs(root: str | Path) -> list[Run]:
    """Every run under ``root`` (any depth), in a stable order."""
    runs: list[Run] = []
    for arm_file in sorted(Path(root).rglob("arm.json")):
        runs.extend(read_run(arm_file.parent))
    return runs


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def cg_table(runs: Sequence[Run], arm_order: Sequence[str] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of the Table-3-style table (volume runs excluded).

    Row keys: ``combination``, ``target``, one per arm (accuracy in [0, 1] or None), ``success``
    (True/False when Baseline, Baseline+ and Trained all exist for the target, else None).
    """
    main = [r for r in runs if r.series is None]
    arms: list[str] = list(arm_order or [])
    for r in main:
        if r.arm not in arms:
            arms.append(r.arm)
    by_target: dict[str, dict[str, Run]] = defaultdict(dict)
    for r in main:
        by_target[r.target][r.arm] = r
    rows = []
    for target in sorted(by_target):
        got = by_target[target]
        trained = got.get("Trained")
        combination = trained.combination if trained else next((r.combination for r in got.values() if r.combination), "")
        row: dict[str, Any] = {"combination": combination, "target": target}
        for arm in arms:
            row[arm] = got[arm].accuracy if arm in got else None
        if all(a in got for a in SUCCESS_ARMS):
            t = got["Trained"].accuracy
            row["success"] = t > got["Baseline"].accuracy and t > got["Baseline+"].accuracy
        else:
            row["success"] = None
        rows.append(row)
    return ["combination", "target", *arms, "success"], rows


def to_markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub markdown table; accuracies in %, success as 🟩 yes / 🟥 no (the paper's green/red)."""
    head = ["Related combination" if c == "combination" else "Target subset" if c == "target" else c for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if c == "success":
                cells.append("" if v is None else ("🟩 yes" if v else "🟥 no"))
            elif c in ("combination", "target"):
                cells.append(str(v or ""))
            else:
                cells.append(_pct(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """CSV with accuracies as fractions (full precision) and success as true/false/empty."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            out = []
            for c in columns:
                v = row.get(c)
                out.append("" if v is None else ("true" if v is True else "false" if v is False else v))
            w.writerow(out)


def volume_curves(runs: Sequence[Run]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """figure -> series -> sorted (volume, accuracy) points."""
    figs: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.series is not None and r.volume is not None:
            figs[r.figure or "volume"][r.series].append((r.volume, r.accuracy))
    return {f: {s: sorted(p) for s, p in sorted(ss.items())} for f, ss in sorted(figs.items())}


def plot_volume(
    curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "", xlabel: str = "training samples"
) -> Path:
    """A Figure 5/6-style PNG: accuracy (%) on the target vs data volume, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for name, points in curves.items():
        xs, ys = zip(*points) if points else ((), ())
        ax.plot(xs, [100 * y for y in ys], marker="o", label=name, color=SERIES_COLORS.get(name.lower()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy on target (%)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def render(root: str | Path, out_dir: str | Path | None = None, arm_order: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``table.md``, ``table.csv`` and one ``volume_<figure>.png`` per volume figure; return paths and markdown."""
    root = Path(root)
    out = Path(out_dir) if out_dir else root
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(root)
    if not runs:
        raise FileNotFoundError(f"no arm.json under {root}; run eval/experiment.py first")
    columns, rows = cg_table(runs, arm_order)
    md = to_markdown(columns, rows) if rows else ""
    written: dict[str, Any] = {"markdown": md, "plots": []}
    if rows:
        (out / "table.md").write_text(md)
        write_csv(columns, rows, out / "table.csv")
        written["table_md"], written["table_csv"] = str(out / "table.md"), str(out / "table.csv")
    targets = {r.figure or "volume": r.target for r in runs if r.series is not None}
    xlabels = {r.figure or "volume": r.xlabel for r in runs if r.series is not None and r.xlabel}
    for figure, curves in volume_curves(runs).items():
        png = plot_volume(curves, out / f"volume_{figure}.png", title=f"{figure}: target {targets.get(figure, '')}",
                          xlabel=xlabels.get(figure) or "training samples")
        written["plots"].append(str(png))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render CG tables and volume plots from an experiment folder.")
    p.add_argument("root", help="experiment folder (holds */arm.json + */results.json)")
    p.add_argument("--out", help="where to write table.md, table.csv, volume_*.png (default: root)")
    args = p.parse_args(argv)
    written = render(args.root, args.out)
    print(written["markdown"], end="")
    for png in written["plots"]:
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    import sys

    _root = Path(__file__).resolve().parents[1]
    if sys.path and Path(sys.path[0]).resolve() == _root / "eval":
        sys.path[0] = str(_root)
    raise SystemExit(main())
