"""The report step: the table and curves of whatever has finished, and a list of what has not.

Reads only ``OUT/plan.json`` (written by a run or an export) and the finished runs' result files,
so it works on a cluster while jobs are still running, after some failed, or on another machine.
One table row per spec row (Table 3 has several rows per target), built with
:func:`..report.cg_table` row by row; volume series become Figure 5/6-style plots with
:func:`..plots.plot_volume`. Cells whose training or evaluation has not finished stay empty in
the table and are listed in ``missing.json`` and under the table.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmat_builder.evaluate import plots, report
from medmat_builder.evaluate.experiments.jobs import evaluation_finished, marker_token

MISSING_LISTED = 20


@dataclass
class Collected:
    markdown: str
    plots: list[str] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    finished: int = 0
    total: int = 0
    table_md: str | None = None
    table_csv: str | None = None


def _cell_runs(plan: dict[str, Any]) -> tuple[list[tuple[dict, report.Run]], list[dict[str, Any]]]:
    trainings, evals = plan["trainings"], plan["evals"]
    read: dict[str, dict[str, report.Run]] = {}
    found: list[tuple[dict, report.Run]] = []
    missing: list[dict[str, Any]] = []
    for cell in plan["cells"]:
        ev = evals[cell["eval_job"]]
        tkey = cell.get("training")
        why = None
        if tkey is not None and marker_token(trainings[tkey]["model_dir"], tkey) is None:
            why = f"training {tkey} has not finished ({trainings[tkey]['model_dir']})"
        else:
            model = (trainings[tkey]["model_dir"], tkey) if tkey is not None else None
            if not evaluation_finished(ev["run_dir"], cell["eval_job"], model):
                why = f"evaluation {cell['eval_job']} has not finished ({ev['run_dir']})"
        if why:
            missing.append({k: cell.get(k) for k in ("row", "target", "arm", "series", "figure", "volume")}
                           | {"reason": why})
            continue
        if cell["eval_job"] not in read:
            read[cell["eval_job"]] = {r.target: r for r in report.read_run(ev["run_dir"])}
        base = read[cell["eval_job"]][cell["target"]]
        found.append((cell, dataclasses.replace(
            base, arm=cell["arm"], combination=cell["combination"], series=cell.get("series"),
            figure=cell.get("figure"), volume=cell.get("volume"), xlabel=cell.get("xlabel"))))
    return found, missing


def _missing_text(missing: list[dict[str, Any]], total: int) -> str:
    if not missing:
        return ""
    lines = ["", f"Missing: {len(missing)} of {total} results have not finished (all listed in missing.json):"]
    for m in missing[:MISSING_LISTED]:
        what = f"{m['row']} {m['arm']}" if m.get("series") is None else f"{m['figure']} {m['series']} @{m['volume']}"
        lines.append(f"- {what} ({m['target']}): {m['reason']}")
    if len(missing) > MISSING_LISTED:
        lines.append(f"- ... and {len(missing) - MISSING_LISTED} more")
    return "\n".join(lines) + "\n"


def collect(out: str | Path, plan: dict[str, Any] | None = None) -> Collected:
    """Write ``table.md``, ``table.csv``, ``volume_<figure>.png`` and ``missing.json`` into ``out``."""
    out = Path(out)
    if plan is None:
        path = out / "plan.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run or export the experiment first "
                                    "(python eval/experiment.py SPEC --output_dir OUT [--export slurm])")
        plan = json.loads(path.read_text(encoding="utf-8"))
    found, missing = _cell_runs(plan)
    arms: list[str] = plan["main_arms"]
    written = Collected(markdown="", missing=missing, finished=len(found), total=len(plan["cells"]))

    alpha = report.spec_alpha(out)
    if arms:
        columns: list[str] = []
        rows = []
        for row in plan["rows"]:
            rid = row["id"]
            cells = [c for c in plan["cells"] if c["row"] == rid and c.get("series") is None]
            combination = next((c["combination"] for c in cells if c["arm"] == "Trained"), "") or \
                next((c["combination"] for c in cells if c["combination"]), "")
            runs = [r for c, r in found if c["row"] == rid and c.get("series") is None]
            cols, got = report.cg_table(runs, arms, alpha) if runs else ([], [])
            columns = columns or cols
            got = got or [{"target": row["target"], "metric": "accuracy", "n": [], **{a: None for a in arms},
                           "success": None}]
            rows += [{**line, "combination": combination} for line in got]  # the planned combination
        columns = columns or ["combination", "target", "metric", "n", "chance", "majority", *arms, "success"]
        notes = [report.table_note(alpha),
                 *report.warnings([r for _, r in found if r.series is None])]
        written.markdown = report.to_markdown(columns, rows, notes) + _missing_text(missing, written.total)
        (out / "table.md").write_text(written.markdown, encoding="utf-8")
        report.write_csv(columns, rows, out / "table.csv")
        written.table_md, written.table_csv = str(out / "table.md"), str(out / "table.csv")
        summary = {"alpha": alpha, "columns": columns, "rows": rows, "warnings": notes[1:]}
        (out / "table.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if any(line.get(a) for line in rows for a in arms):
            written.plots.append(str(plots.plot_cg(rows, arms, out / "cg_table.png")))
    else:
        written.markdown = _missing_text(missing, written.total)

    curves_runs = [r for _, r in found if r.series is not None]
    targets = {r.figure: r.target for r in curves_runs}
    xlabels = {r.figure: r.xlabel for r in curves_runs if r.xlabel}
    for figure, curves in report.volume_curves(curves_runs).items():
        vcols, vrows = report.volume_rows(curves)
        (out / f"volume_{figure}.md").write_text(report.to_markdown(vcols, vrows), encoding="utf-8")
        png = plots.plot_volume(curves, out / f"volume_{figure}.png", title=f"{figure}: target {targets.get(figure, '')}",
                                xlabel=xlabels.get(figure) or "training samples")
        written.plots.append(str(png))
    (out / "missing.json").write_text(json.dumps(missing, indent=1) + "\n", encoding="utf-8")
    return written
