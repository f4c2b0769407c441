"""Plots of experiment results: accuracy with Wilson 95% interval bars and the chance level.

* :func:`plot_cg`: the Table-3-style table as grouped bars (one group per target, one bar per arm),
  one panel per metric (accuracy, circular);
* :func:`plot_volume`: Figure 5/6-style curves, accuracy on the target vs data volume per series.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SERIES_COLORS = {"related": "#d62728", "unrelated": "#9467bd"}  # the paper's red and purple


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def plot_cg(rows: Sequence[dict[str, Any]], arms: Sequence[str], path: str | Path) -> Path:
    """Grouped bars of :func:`.report.cg_table` rows, interval bars, a dashed chance line per target."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.2 + 1.6 * max(2, len(rows)), 3.4), dpi=120, squeeze=False)
    width = 0.8 / max(1, len(arms))
    for ax, metric in zip(axes[0], metrics):
        mrows = [r for r in rows if r["metric"] == metric]
        for j, arm in enumerate(arms):
            xs, ys, lo, hi = [], [], [], []
            for i, r in enumerate(mrows):
                v = r.get(arm)
                if v is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(100 * v["accuracy"])
                lo.append(100 * (v["accuracy"] - v["ci95"][0]))
                hi.append(100 * (v["ci95"][1] - v["accuracy"]))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=arm)
        for i, r in enumerate(mrows):
            if r.get("chance") is not None:
                ax.hlines(100 * r["chance"], i - 0.45, i + 0.45, colors="k", linestyles="dashed",
                          label="chance" if i == 0 else None)
        ax.set_xticks(range(len(mrows)), [r["target"] for r in mrows])
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy with 95% intervals (Wilson); dashed: chance", fontsize=8)
    return _save(fig, path)


def plot_volume(curves: dict[str, Sequence[Any]], path: str | Path, title: str = "",
                xlabel: str = "training samples") -> Path:
    """Accuracy (%) on the target vs data volume, one line per series, interval bars, chance line.

    ``curves``: series -> :class:`.report.Run` objects sorted by volume.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    chances = []
    for name, runs in curves.items():
        xs = [r.volume for r in runs]
        scores = [r.score("accuracy") for r in runs]
        ys = [100 * s["accuracy"] for s in scores]
        err = [[y - 100 * s["ci95"][0] for y, s in zip(ys, scores)], [100 * s["ci95"][1] - y for y, s in zip(ys, scores)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name, color=SERIES_COLORS.get(name.lower()))
        chances += [r.chance for r in runs if r.chance is not None]
    if chances:
        ax.axhline(100 * sum(chances) / len(chances), color="k", linestyle="dashed", linewidth=1, label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy on target (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
