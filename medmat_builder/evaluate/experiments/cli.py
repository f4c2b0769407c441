"""Run, price or export a compositional-generalization experiment from one spec: the command line.

The command of ``eval/experiment.py`` and ``python -m medmat_builder.evaluate.experiments``::

    python eval/experiment.py SPEC [--set NAME=VALUE ...] [--output_dir OUT]          # run here
    python eval/experiment.py SPEC --set ... --dry_run [--samples_per_second X --eval_items_per_second Y]
    python eval/experiment.py SPEC --set ... --dry_run --calibrate                      # measure X and Y first
    python eval/experiment.py SPEC --set ... --output_dir OUT --export slurm|commands
    python eval/experiment.py OUT/spec.yaml --output_dir OUT --collect                  # the report step

The spec (YAML; the paper's experiments are in eval/specs/) names the data, the rows (targets, or
targets with the members of a combination), the arms and the volume curves; see docs/eval.md.
The planner turns it into distinct trainings (a mixture used by several cells is trained once) and
evaluations (one per model, over every target asked of it) and table cells (:mod:`.plan`). A run
executes them here; a finished job is skipped on rerun and an interrupted one is redone
(:mod:`.jobs`). ``--dry_run`` writes nothing and prints what the spec costs (:mod:`.cost`);
``--export`` writes job scripts for Slurm or any other scheduler (:mod:`.export`); ``--collect``
writes the table and curves of whatever has finished and lists what is missing (:mod:`.collect`).

Outputs: ``OUT/models/<key>/`` (trained models), ``OUT/runs/<name>/`` (``arm.json``,
``results.json``, ``predictions.jsonl``), ``OUT/mixtures/``, ``OUT/spec.yaml`` (the filled spec),
``OUT/plan.json``, ``OUT/table.md``, ``OUT/table.csv``, ``OUT/volume_<figure>.png``, ``OUT/missing.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medmat_builder.evaluate.experiments.collect import collect
from medmat_builder.evaluate.experiments.cost import Rates, calibrate, price
from medmat_builder.evaluate.experiments.export import EXPORTS, export
from medmat_builder.evaluate.experiments.jobs import run_local
from medmat_builder.evaluate.experiments.plan import Plan, make_plan, slug
from medmat_builder.evaluate.experiments.spec import ExperimentSpec, SpecError
from medmat_builder.evaluate.experiments.spec_file import load_spec
from medmat_builder.safe_paths import UnsafePathError

DISCLAIMER = (
    "Note: these numbers come from tiny randomly initialised models trained for a few steps on "
    "synthetic images; they exercise the pipeline and mean nothing medically."
)


class Experiment:
    """Plans an :class:`ExperimentSpec` into ``out_dir`` and runs it here (see the module docstring)."""

    def __init__(self, spec: ExperimentSpec, out_dir: str | Path, dry_run: bool = False, log=print):
        self.spec, self.out, self.dry_run, self.log = spec, Path(out_dir), dry_run, log

    def plan(self) -> Plan:
        return make_plan(self.spec, self.out)

    def claim_output(self) -> None:
        """Apply the output-folder rule (``medmat_builder.safe_paths``): new, empty or an earlier experiment.

        Raises ``UnsafePathError`` before any work; a dry run writes nothing and claims nothing.
        """
        from medmat_builder.safe_paths import claim

        dataset = Path(self.spec.dataset)
        keep_clear = [("the dataset", dataset)] if dataset.exists() else []
        claim(self.out, "experiment", label="--output_dir", keep_clear=keep_clear)

    def run(self) -> dict[str, Any]:
        """Run every job not yet finished, then collect; returns ``{"markdown", "plots", "missing"}``.
        With ``dry_run`` nothing is run or written and the pricing is returned under ``"pricing"``."""
        plan = self.plan()
        if self.dry_run:
            return {"markdown": "", "plots": [], "missing": [], "pricing": price(plan)}
        self.claim_output()
        run_local(plan, self.log)
        got = collect(plan.out, plan.to_json())
        return {"markdown": got.markdown, "plots": got.plots, "missing": got.missing}


def is_tiny(path: str) -> bool:
    from medmat_builder.tiny_models import is_tiny_model

    return is_tiny_model(path)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of the experiment command (``prog`` names it in ``--help``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run, price (--dry_run) or export (--export) a CG experiment spec; --collect renders its table.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Shipped specs: eval/specs/*.yaml (one per table and figure of the paper). See docs/eval.md.")
    p.add_argument("spec", help="experiment spec YAML (paths in it are relative to the spec file)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="fill a placeholder ${NAME} (upper case) or set a field (lower case, dotted: eval.limit=50); "
                        "paths given here are relative to the working folder; repeatable")
    p.add_argument("--output_dir", help="default: the spec's output_dir, else runs/<name>")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry_run", action="store_true",
                      help="write nothing; print the distinct trainings, samples, evaluations, items and GPU hours")
    mode.add_argument("--export", choices=EXPORTS,
                      help="write job scripts: a Slurm array job (OUT/slurm/submit.sh) or a command list "
                           "(OUT/commands.txt)")
    mode.add_argument("--collect", action="store_true",
                      help="the report step: table and plots of whatever finished, and missing.json")
    p.add_argument("--format", choices=("table", "json"), default="table", help="--dry_run output (default table)")
    p.add_argument("--samples_per_second", type=float,
                   help="--dry_run: training throughput of one training job on its launcher (all its GPUs)")
    p.add_argument("--eval_items_per_second", type=float,
                   help="--dry_run: evaluation throughput of one evaluation job on its launcher")
    p.add_argument("--calibrate", action="store_true",
                   help="--dry_run: measure both throughputs with two short trainings and one short evaluation of "
                        "the backbone (in a temporary folder, removed afterwards)")
    p.add_argument("--calibrate_steps", type=int, nargs=2, default=(2, 6), metavar=("A", "B"),
                   help="--calibrate: optimizer steps of the two short trainings (default 2 6)")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="--export slurm: an extra #SBATCH line, e.g. --sbatch=--partition=gpu --sbatch=--time=24:00:00")
    p.add_argument("--setup", action="append", metavar="LINE",
                   help="--export: a shell line run first in every job (default: put this Python's bin/ first "
                        "on PATH); repeatable")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run, price, export or collect the experiment the flags in ``argv`` name; the exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.dry_run and (args.calibrate or args.samples_per_second or args.eval_items_per_second):
        parser.error("--samples_per_second, --eval_items_per_second and --calibrate price a --dry_run; add --dry_run")
    if args.export != "slurm" and args.sbatch:
        parser.error("--sbatch goes with --export slurm")
    if not args.export and args.setup:
        parser.error("--setup goes with --export")
    try:
        spec = load_spec(args.spec, args.sets)
    except SpecError as err:
        raise SystemExit(f"error: {err}") from None
    out = Path(args.output_dir or spec.output_dir or f"runs/{slug(spec.name)}")
    if args.collect:
        try:
            Experiment(spec, out).claim_output()
        except UnsafePathError as exc:
            print(f"error: {exc}")
            return 2
        got = collect(out)
        print(got.markdown, end="")
        for png in got.plots:
            print(f"wrote {png}")
        print(f"{got.finished} of {got.total} results finished; missing listed in {out / 'missing.json'}")
        return 0
    try:
        plan = make_plan(spec, out)
        if args.dry_run:
            rates = Rates(args.samples_per_second, args.eval_items_per_second,
                          "given: " + ", ".join(x for x in (
                              f"{args.samples_per_second:g} samples/s per training job" if args.samples_per_second
                              else "", f"{args.eval_items_per_second:g} items/s per evaluation job"
                              if args.eval_items_per_second else "") if x))
            if args.calibrate:
                rates = calibrate(plan, steps=tuple(args.calibrate_steps))
            pricing = price(plan, rates)
            if args.format == "json":
                print(json.dumps(pricing.to_json(), indent=1))
            else:
                print(pricing.table(), end="")
            return 0
        if args.export:
            Experiment(spec, out).claim_output()
            done = export(plan, args.export, args.sbatch, args.setup)
            print(f"wrote {len(done.files)} files under {plan.out}: {done.train_tasks} training jobs, "
                  f"{done.eval_trained_tasks + done.eval_untrained_tasks} evaluation jobs, 1 report job")
            print("run: " + "\n     ".join(done.commands[:1] if args.export == "slurm" else
                                           [f"the lines of {plan.out / 'commands.txt'} in order"]))
            return 0
        written = Experiment(spec, out).run()
    except SpecError as err:
        raise SystemExit(f"error: {err}") from None
    except UnsafePathError as exc:
        print(f"error: {exc}")
        return 2
    if written["markdown"]:
        print(written["markdown"], end="")
    for png in written["plots"]:
        print(f"wrote {png}")
    if spec.tiny_model_arch or is_tiny(plan.backbone):
        print(DISCLAIMER)
    return 0
