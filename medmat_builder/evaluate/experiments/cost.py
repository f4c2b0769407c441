"""What an experiment costs before it runs: trainings after sharing, samples, evaluation items, GPU hours.

:func:`price` works on a :class:`~medmat_builder.evaluate.experiments.plan.Plan` and writes nothing. Counts come from
the build's ``build_report.json`` when the dataset is a local build (the records each config really
holds), else from the caps: the paper's 3,000 training samples per subset (Section 2.1), and for test
items the builder's caps (a strictly label-balanced test split of at most 250 items per label, 1,000
for a multi-label subset). The report says which.

GPU hours need a throughput: ``samples_per_second`` of one training job and ``eval_items_per_second``
of one evaluation job, each on the spec's launcher (all GPUs of the job together), given by the user
or measured by :func:`calibrate` (two short trainings and one short evaluation of the backbone).
GPU hours = wall hours x GPUs per job.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medmat_builder.evaluate.experiments.jobs import (
    EVALUATE_MODULE,
    TRAIN_MODULE,
    Launch,
    evaluation_launch,
    training_launch,
)
from medmat_builder.evaluate.experiments.plan import Plan, TrainingJob, registry_planner
from medmat_builder.evaluate.experiments.spec import SpecError
from medmat_builder.planner import DEFAULT_CAP
from medmat_builder.build import BuildSettings

HF_DEFAULT_EPOCHS = 3.0        # transformers.TrainingArguments.num_train_epochs
HF_DEFAULT_DEVICE_BATCH = 8    # transformers.TrainingArguments.per_device_train_batch_size


@dataclass
class Rates:
    samples_per_second: float | None = None
    eval_items_per_second: float | None = None
    source: str = "not given"


@dataclass
class TrainingCost:
    key: str
    uses: list[str]
    description: str
    samples: dict[str, int]
    samples_per_epoch: int
    epochs: float | None
    max_steps: int | None
    global_batch: int | None
    samples_seen: int
    hours: float | None = None
    gpu_hours: float | None = None


@dataclass
class EvalCost:
    key: str
    model: str
    uses: int
    items: dict[str, int]
    total_items: int
    hours: float | None = None
    gpu_hours: float | None = None


@dataclass
class Pricing:
    name: str
    paper: str | None
    spec: str | None
    backbone: str
    recipe: str | None
    rows: int
    arms: list[str]
    series: dict[str, list[str]]
    sizes: dict[str, list[int]]
    cells: int
    trainings_before_sharing: int
    trainings: int
    evaluation_cells: int
    evaluations: int
    config_evaluations: int
    samples_seen: int
    eval_items: int
    counts_source: str
    items_source: str
    gpus_per_training: int
    gpus_per_evaluation: int
    training_on_gpu: bool
    evaluation_on_gpu: bool
    rates: Rates
    gpu_hours_training: float | None
    gpu_hours_evaluation: float | None
    training_jobs: list[TrainingCost] = field(default_factory=list)
    evaluation_jobs: list[EvalCost] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def saved_by_sharing(self) -> int:
        return self.trainings_before_sharing - self.trainings

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["saved_by_sharing"] = self.saved_by_sharing
        return data

    def table(self, jobs: bool = True) -> str:
        """The dry run as text: the summary, then one line per training and per evaluation."""
        arms = ", ".join(self.arms) or "-"
        lines = [f"{self.name}" + (f" ({self.paper})" if self.paper else "") + (f"  [{self.spec}]" if self.spec else "")]
        shape = f"rows {self.rows}, arms {len(self.arms)} ({arms})"
        for vol, series in self.series.items():
            shape += f"; {vol}: {len(series)} series ({', '.join(series)}) x {len(self.sizes[vol])} sizes " \
                     f"({', '.join(map(str, self.sizes[vol]))})"
        lines += [shape, f"backbone {self.backbone}; recipe {self.recipe or '-'}",
                  f"training counts: {self.counts_source}", f"test items: {self.items_source}", ""]
        lines.append(f"trainings: {self.trainings_before_sharing} needed by the cells, {self.trainings} distinct after "
                     f"sharing (sharing saves {self.saved_by_sharing}); "
                     + _devices(self.gpus_per_training, self.training_on_gpu))
        if jobs and self.training_jobs:
            lines.append(f"  {'training':<12} {'samples/epoch':>13} {'epochs':>6} {'samples seen':>12} {'GPU h':>7}  "
                         "used by | data")
            for t in self.training_jobs:
                epochs = f"{t.epochs:g}" if t.max_steps is None else f"{t.max_steps}st"
                used = ", ".join(t.uses[:3]) + (f" +{len(t.uses) - 3}" if len(t.uses) > 3 else "")
                lines.append(f"  {t.key:<12} {t.samples_per_epoch:>13,} {epochs:>6} {t.samples_seen:>12,} "
                             f"{_h(t.gpu_hours):>7}  {used} | {t.description}")
        lines.append(f"evaluations: {self.evaluation_cells} cells, {self.evaluations} distinct runs, "
                     f"{self.config_evaluations} config evaluations, {self.eval_items:,} items; "
                     + _devices(self.gpus_per_evaluation, self.evaluation_on_gpu))
        if jobs and self.evaluation_jobs:
            lines.append(f"  {'evaluation':<12} {'configs':>7} {'items':>8} {'GPU h':>7}  model")
            for e in self.evaluation_jobs:
                lines.append(f"  {e.key:<12} {len(e.items):>7} {e.total_items:>8,} {_h(e.gpu_hours):>7}  {e.model}")
        lines += ["", f"total: {self.trainings} trainings seeing {self.samples_seen:,} samples; "
                      f"{self.evaluations} evaluations of {self.eval_items:,} items"]
        if self.gpu_hours_training is not None or self.gpu_hours_evaluation is not None:
            total = (self.gpu_hours_training or 0) + (self.gpu_hours_evaluation or 0)
            lines.append(f"GPU hours: training {_h(self.gpu_hours_training)}, evaluation {_h(self.gpu_hours_evaluation)}, "
                         f"total {total:,.1f} ({self.rates.source})")
        else:
            lines.append("GPU hours: give --samples_per_second and --eval_items_per_second (or --calibrate)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _devices(n: int, gpu: bool) -> str:
    return f"{n} GPU{'s' if n != 1 else ''} each" if gpu else f"{n} process{'es' if n != 1 else ''} each (no GPU launcher)"


def _h(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


# --------------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------------


def merged_args(plan: Plan, job: TrainingJob) -> dict[str, Any]:
    return {**plan.recipe, **job.train_args}


def global_batch(args: dict[str, Any], launch: Launch) -> int:
    if args.get("global_batch_size"):
        return int(args["global_batch_size"])
    per_device = int(args.get("per_device_train_batch_size", HF_DEFAULT_DEVICE_BATCH))
    return per_device * int(args.get("gradient_accumulation_steps", 1)) * max(1, launch.num_processes)


def _test_counts(plan: Plan) -> tuple[dict[str, int] | None, str]:
    if plan.build_report is not None:
        report = json.loads(plan.build_report.read_text(encoding="utf-8"))
        counts = {c: sum(int(s.get("kept", {}).get("test", 0)) for s in e.get("sources", {}).values())
                  for c, e in report.get("configs", {}).items()}
        return counts, f"build report (real counts): {plan.build_report}"
    s = BuildSettings()
    return None, (f"builder caps (strictly label-balanced: {s.test_max_per_label} per label, {s.test_cap:,} for a "
                  f"multi-label subset; no build_report.json in {plan.spec.dataset})")


def _cap_items(config: str) -> int:
    _, facts = registry_planner()
    kind, labels = facts.get(config, ("single-label", 0))
    s = BuildSettings()
    return s.test_cap if kind == "multi-label" else s.test_max_per_label * labels


def price(plan: Plan, rates: Rates | None = None) -> Pricing:
    """Price every job of ``plan`` (see the module docstring)."""
    rates = rates or Rates()
    spec = plan.spec
    warnings: list[str] = []
    tl, el = training_launch(spec), evaluation_launch(spec)
    caps = plan.caps
    if caps is not None:
        counts_source = f"build report (real counts): {plan.build_report}"
    else:
        counts_source = (f"paper caps: {DEFAULT_CAP:,} training samples per subset (Section 2.1); no "
                         f"build_report.json in {spec.dataset}")
    not_built: set[str] = set()

    trainings: list[TrainingCost] = []
    for job in plan.trainings.values():
        args = merged_args(plan, job)
        samples: dict[str, int] = {}
        for config, asked in job.configs:
            if caps is None:
                samples[config] = asked if asked is not None else DEFAULT_CAP
            elif config not in caps:
                not_built.add(config)
                samples[config] = 0
            else:
                samples[config] = caps[config] if asked is None else min(asked, caps[config])
        if args.get("general_mcq_dataset"):
            if args.get("general_mcq_samples"):
                samples["general_mcq"] = int(args["general_mcq_samples"])
            else:
                warnings.append(f"training {job.key}: --general_mcq_dataset without --general_mcq_samples is not "
                                "counted (its size is unknown before it is read)")
        per_epoch = sum(samples.values())
        max_steps = int(args.get("max_steps", -1) or -1)
        batch = global_batch(args, tl)
        if max_steps > 0:
            seen, epochs = max_steps * batch, None
        else:
            epochs = float(args.get("num_train_epochs", HF_DEFAULT_EPOCHS))
            seen = int(round(epochs * per_epoch))
        cost = TrainingCost(key=job.key, uses=list(job.uses), description=job.description, samples=samples,
                            samples_per_epoch=per_epoch, epochs=epochs, max_steps=max_steps if max_steps > 0 else None,
                            global_batch=batch, samples_seen=seen)
        if rates.samples_per_second:
            cost.hours = seen / rates.samples_per_second / 3600
            cost.gpu_hours = cost.hours * max(1, tl.num_processes)
        trainings.append(cost)

    test_counts, items_source = _test_counts(plan)
    limit = spec.eval.limit
    evaluations: list[EvalCost] = []
    for job in plan.evals.values():
        items: dict[str, int] = {}
        for config in job.configs:
            if test_counts is None:
                n = _cap_items(config)
            elif config not in test_counts:
                not_built.add(config)
                n = 0
            else:
                n = test_counts[config]
            items[config] = min(n, limit) if limit is not None else n
        total = sum(items.values())
        cost = EvalCost(key=job.key, model=job.model, uses=len(job.uses), items=items, total_items=total)
        if rates.eval_items_per_second:
            cost.hours = total / rates.eval_items_per_second / 3600
            cost.gpu_hours = cost.hours * max(1, el.num_processes)
        evaluations.append(cost)
    if not_built:
        warnings.append(f"not in the build (counted as 0): {', '.join(sorted(not_built))}; build them "
                        f"(`medmat build ... --out {spec.dataset}`) for a full count")

    def total(xs: list[float | None]) -> float | None:
        return None if not xs or any(x is None for x in xs) else float(sum(xs))  # type: ignore[arg-type]

    return Pricing(
        name=spec.name, paper=spec.paper, spec=str(spec.source) if spec.source else None, backbone=plan.backbone,
        recipe=spec.recipe, rows=len(plan.rows), arms=list(spec.arms),
        series={v.name: list(v.series) for v in spec.volume}, sizes={v.name: list(v.sizes) for v in spec.volume},
        cells=len(plan.cells), trainings_before_sharing=plan.training_cells, trainings=len(plan.trainings),
        evaluation_cells=len(plan.cells), evaluations=len(plan.evals),
        config_evaluations=sum(len(e.items) for e in evaluations),
        samples_seen=sum(t.samples_seen for t in trainings), eval_items=sum(e.total_items for e in evaluations),
        counts_source=counts_source, items_source=items_source,
        gpus_per_training=max(1, tl.num_processes), gpus_per_evaluation=max(1, el.num_processes),
        training_on_gpu=tl.uses_gpu, evaluation_on_gpu=el.uses_gpu, rates=rates,
        gpu_hours_training=total([t.gpu_hours for t in trainings]) if rates.samples_per_second else None,
        gpu_hours_evaluation=total([e.gpu_hours for e in evaluations]) if rates.eval_items_per_second else None,
        training_jobs=trainings, evaluation_jobs=evaluations, warnings=warnings,
    )


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------

Runner = Callable[[list[str]], float]


def timed_run(cmd: list[str]) -> float:
    """Run ``cmd`` here; seconds of wall time."""
    start = time.perf_counter()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SpecError(f"calibration command failed (exit {proc.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - start


def calibrate(plan: Plan, *, steps: tuple[int, int] = (2, 6), eval_limit: int = 32,
              run: Runner = timed_run) -> Rates:
    """Measure this backbone's throughput on the spec's launchers.

    Training: the plan's first training is run for ``steps[0]`` and ``steps[1]`` optimizer steps; the
    difference removes start-up time (loading, data preparation): samples/s = (steps[1] - steps[0]) x
    global batch / (t1 - t0). Evaluation: the first evaluation on its first config with ``--limit
    eval_limit``; items/s from the scoring time evaluate.py records in results.json (``seconds``,
    model loading excluded), else from the wall time. Everything is written to a temporary folder that
    is removed afterwards.
    """
    if not plan.trainings and not plan.evals:
        raise SpecError("nothing to calibrate: the plan has no training and no evaluation")
    if steps[1] <= steps[0] or steps[0] < 1:
        raise SpecError(f"calibration steps must be two increasing numbers >= 1, got {steps}")
    rates = Rates(source="calibrated")
    tmp = Path(tempfile.mkdtemp(prefix="medmat-calibrate-"))
    try:
        parts = []
        if plan.trainings:
            job = next(iter(plan.trainings.values()))
            args = list(job.sft_args)
            if job.mixture is not None and job.mixture_path is not None:
                mixture = job.mixture.save(tmp / "mixture.yaml")
                args[args.index(str(job.mixture_path))] = str(mixture)
            launch = training_launch(plan.spec)
            seconds = []
            for k in steps:
                cmd = launch.command(TRAIN_MODULE, [*args, "--max_steps", str(k), "--save_strategy", "no",
                                                    "--report_to", "none", "--output_dir", str(tmp / f"train-{k}")])
                seconds.append(run(cmd))
            batch = global_batch(merged_args(plan, job), launch)
            dt = seconds[1] - seconds[0]
            if dt <= 0:
                raise SpecError(f"calibration: {steps[1]} steps took no longer than {steps[0]} ({seconds}); "
                                "use more steps (--calibrate_steps)")
            rates.samples_per_second = (steps[1] - steps[0]) * batch / dt
            parts.append(f"training {rates.samples_per_second:.2f} samples/s from {steps[0]} vs {steps[1]} steps of "
                         f"global batch {batch}")
        if plan.evals:
            ev = next(iter(plan.evals.values()))
            model = plan.backbone
            out = tmp / "eval"
            argv = ev.argv(plan.spec)
            argv[argv.index("--model_name_or_path") + 1] = model
            i = argv.index("--configs")
            argv[i + 1: i + 1 + len(ev.configs)] = [ev.configs[0]]
            argv[argv.index("--output_dir") + 1] = str(out)
            if "--limit" in argv:
                argv[argv.index("--limit") + 1] = str(eval_limit)
            else:
                argv += ["--limit", str(eval_limit)]
            launch = evaluation_launch(plan.spec)
            wall = run(launch.command(EVALUATE_MODULE, argv))
            results = json.loads((out / "results.json").read_text(encoding="utf-8"))
            n = sum(int(r.get("n", 0)) for r in results.get("configs", {}).values())
            seconds = float(results.get("seconds") or wall)
            rates.eval_items_per_second = n / seconds if seconds > 0 else math.inf
            parts.append(f"evaluation {rates.eval_items_per_second:.2f} items/s from {n} items of {model}")
        rates.source = "calibrated: " + "; ".join(parts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rates
