"""From a spec to jobs: the distinct trainings, the evaluations and the table cells they fill.

:func:`make_plan` is pure: it reads the spec, the recipe, the planner and (when the dataset is a local
build) its ``build_report.json``, and writes nothing. Running, pricing and exporting all start here,
so a dry run prices exactly what a run or an export would do.

Sharing. Every cell of a table (a row and an arm) or of a figure (a row, a series and a size) needs
a model and an evaluation of it on the row's target. Two cells share a training when the training
would read the same data with the same settings: the same records of the same configs in the same
order (a planner mixture is compared by its content, not its name), the same leakage-guard target,
the same backbone, recipe and flags. Cells that need the same model share one evaluation, run over
every target asked of that model (the untrained backbone is evaluated once on all targets).

Keys. A training's key is a hash of what determines the model; its folder is
``OUT/models/<key>/``. An evaluation's key hashes the model, the configs and the evaluation settings.
A job is finished when its folder holds a completion marker with its key (:mod:`.jobs`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from medmat_builder.evaluate.experiments.spec import ArmSpec, ExperimentSpec, RowSpec, SpecError
from medmat_builder.planner import Mixture, Planner, PlannerError, caps_from_build_report


def slug(text: str) -> str:
    """``Baseline+`` -> ``baselineplus``; a folder-safe name."""
    s = text.replace("+", "plus")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-").lower() or "run"


def short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def flags(args: dict[str, Any]) -> list[str]:
    """``{"max_steps": 8, "bf16": True}`` -> ``["--max_steps", "8", "--bf16", "true"]``."""
    out: list[str] = []
    for k, v in args.items():
        out.append(f"--{k}")
        if isinstance(v, (list, tuple)):
            out.extend(str(x) for x in v)
        else:
            out.append(str(v).lower() if isinstance(v, bool) else str(v))
    return out


@lru_cache(maxsize=4)
def registry_planner(registry_path: str | None = None) -> tuple[Planner, dict[str, tuple[str, int]]]:
    """The planner over ``sources.yaml`` and, per config, (kind, number of labels); loaded once per process."""
    from medmat_builder.registry import load_registry

    registry = load_registry(registry_path)
    planner = Planner(registry.subsets)
    facts = {s.name: (s.kind, len(s.labels)) for s in registry.subsets}
    return planner, facts


# --------------------------------------------------------------------------------------------------
# Jobs and cells
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainingJob:
    """One distinct training."""

    key: str
    target: str | None                     # the config whose test split the training must never see
    configs: list[tuple[str, int | None]]  # (config, records per epoch asked for; None = the whole train split)
    description: str                       # the combination in words, e.g. "pair:subset_04:... (subset_03:3000, ...)"
    train_args: dict[str, Any]             # spec + arm flags of the training command
    sft_args: list[str]                    # training arguments (training/sft.py flags), without --output_dir
    model_dir: Path
    mixture: Mixture | None = None
    mixture_path: Path | None = None
    uses: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [*self.sft_args, "--output_dir", str(self.model_dir)]


@dataclass
class EvalJob:
    """One evaluation run: one model on one or more configs."""

    key: str
    model: str                  # folder or Hub id evaluated
    training: str | None        # key of the training that makes ``model`` (None: backbone or checkpoint)
    configs: list[str]
    run_dir: Path
    meta: dict[str, Any]        # written to arm.json (first use: arm, combination, row, ...)
    uses: list[str] = field(default_factory=list)

    def argv(self, spec: ExperimentSpec) -> list[str]:
        e = spec.eval
        out = ["--model_name_or_path", self.model, "--dataset_name", spec.dataset, "--configs", *self.configs,
               "--mode", e.mode, "--batch_size", str(e.batch_size), "--max_new_tokens", str(e.max_new_tokens),
               "--split", e.split, "--output_dir", str(self.run_dir)]
        if e.limit is not None:
            out += ["--limit", str(e.limit)]
        if e.circular:
            out.append("--circular")
        return out


@dataclass
class Cell:
    """One number of the table or figure: a row's target under one arm (or series and size)."""

    row: str
    target: str
    arm: str
    eval_job: str
    training: str | None
    combination: str
    series: str | None = None
    figure: str | None = None
    volume: int | None = None
    xlabel: str | None = None

    @property
    def label(self) -> str:
        if self.series is None:
            return f"{self.row} {self.arm}"
        return f"{self.figure} {self.series} @{self.volume}"


@dataclass
class Plan:
    spec: ExperimentSpec
    out: Path
    backbone: str
    recipe: dict[str, Any]
    rows: list[RowSpec]
    trainings: dict[str, TrainingJob]
    evals: dict[str, EvalJob]
    cells: list[Cell]
    caps: dict[str, int] | None          # training records per config of the build, None without a build
    build_report: Path | None

    @property
    def main_arms(self) -> list[str]:
        return list(self.spec.arms)

    @property
    def training_cells(self) -> int:
        """Cells that need a trained model: the trainings before sharing."""
        return sum(1 for c in self.cells if c.training is not None)

    def to_json(self) -> dict[str, Any]:
        """What the report step needs without re-planning (written to OUT/plan.json)."""
        return {
            "name": self.spec.name,
            "paper": self.spec.paper,
            "main_arms": self.main_arms,
            "rows": [r.model_dump() for r in self.rows],
            "trainings": {k: {"model_dir": str(t.model_dir), "description": t.description, "uses": t.uses,
                              "target": t.target, "configs": [list(c) for c in t.configs], "argv": t.argv()}
                          for k, t in self.trainings.items()},
            "evals": {k: {"run_dir": str(e.run_dir), "model": e.model, "training": e.training, "configs": e.configs,
                          "uses": e.uses, "argv": e.argv(self.spec)} for k, e in self.evals.items()},
            "cells": [asdict(c) for c in self.cells],
        }


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


def read_recipe(spec: ExperimentSpec) -> dict[str, Any]:
    if not spec.recipe:
        return {}
    try:
        data = yaml.safe_load(Path(spec.recipe).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SpecError(f"recipe {spec.recipe} not found (shipped recipes: training/recipes/*.yaml)") from None
    if not isinstance(data, dict):
        raise SpecError(f"recipe {spec.recipe} is not a mapping of training/sft.py arguments")
    return data


def build_report_of(dataset: str) -> Path | None:
    ledger = Path(dataset) / "build_report.json"
    return ledger if ledger.is_file() else None


class _Builder:
    def __init__(self, spec: ExperimentSpec, out: Path, registry: str | None):
        self.spec, self.out = spec, out
        self.recipe = read_recipe(spec)
        self.backbone = spec.backbone or self.recipe.get("model_name_or_path")
        if not self.backbone:
            raise SpecError("no backbone: set `backbone` in the spec (--set backbone=...) or use a recipe with "
                            "model_name_or_path")
        self.recipe_hash = short_hash(Path(spec.recipe).read_text(encoding="utf-8")) if spec.recipe else None
        self.planner, self.facts = registry_planner(registry)
        self.build_report = build_report_of(spec.dataset)
        self.caps = caps_from_build_report(self.build_report) if self.build_report else None
        self.trainings: dict[str, TrainingJob] = {}
        self.cells: list[Cell] = []
        # model id -> (eval job under construction); model id is a training key or a model path
        self._evals: dict[str, dict[str, Any]] = {}

    # ---- training data ------------------------------------------------------------------------
    @staticmethod
    def _fill(text: str, row: RowSpec) -> str:
        return text.replace("{target}", row.target).replace("{members}", row.members_text)

    def _mixture(self, arm: ArmSpec, row: RowSpec, budget: int | None, target_samples: int) -> Mixture:
        from medmat_builder.planner import resolve_mixture

        if arm.mixture:
            name = self._fill(arm.mixture, row)
        else:
            configs = [self._fill(c, row) for c in arm.train_configs or []]
            name = f"configs:{row.target}:{'+'.join(configs)}"
        if Path(name).suffix in (".yaml", ".yml") or Path(name).is_absolute():
            try:
                return Mixture.load(name)
            except PlannerError as err:
                raise SpecError(str(err)) from None
        if ":" not in name:
            name = f"{name}:{row.target}"
        options: dict[str, Any] = {"seed": self.spec.seed}
        if budget is not None:
            options["budget"] = budget
        if target_samples:
            options["target_samples"] = target_samples
        if arm.pool:
            options["pool"] = arm.pool
        if self.caps is not None:
            options["caps"] = self.caps
        try:
            return resolve_mixture(name, planner=self.planner, **options)
        except PlannerError as err:
            raise SpecError(f"row {row.id}: mixture {name!r}: {err}") from None

    def training(self, arm_name: str, arm: ArmSpec, row: RowSpec, use: str, *,
                 budget: int | None = None, target_samples: int = 0) -> TrainingJob:
        """The training an arm needs for a row (shared with any identical one already planned)."""
        budget = budget if budget is not None else arm.budget
        target_samples = target_samples or arm.target_samples
        train_args = {**self.spec.train_args, **arm.train_args}
        mixture = None
        if arm.train_configs and budget is None and not target_samples:
            configs = [self._fill(c, row) for c in arm.train_configs]
            try:
                configs = [self.planner.subset(c).name for c in configs]
            except PlannerError as err:
                raise SpecError(f"arm {arm_name!r}: {err}") from None
            target = None if arm.shared else row.target
            per = train_args.get("samples_per_config", self.recipe.get("samples_per_config"))
            data = [(c, int(per) if per is not None else None) for c in configs]
            description = " + ".join(configs)
            data_key: Any = {"configs": data, "target": target}
        else:
            mixture = self._mixture(arm, row, budget, target_samples)
            target = mixture.target
            data = [(e.config, e.samples) for e in mixture.configs]
            description = f"{mixture.name} ({', '.join(f'{c}:{n}' for c, n in data)})"
            data_key = {"mixture": data, "target": target, "seed": mixture.seed}
        key = short_hash({"backbone": self.backbone, "dataset": self.spec.dataset, "recipe": self.spec.recipe,
                          "recipe_text": self.recipe_hash, "seed": self.spec.seed, "args": train_args,
                          "data": data_key})
        job = self.trainings.get(key)
        if job is None:
            model_dir = self.out / "models" / key
            mixture_path = None
            if mixture is not None:
                mixture_path = self.out / "mixtures" / f"{slug(mixture.name)}-{short_hash(data_key)}.yaml"
                data_flags = ["--mixture", str(mixture_path)]
            else:
                data_flags = ["--train_configs", *[c for c, _ in data], *(["--target", target] if target else [])]
            sft_args = [
                *(["--config", self.spec.recipe] if self.spec.recipe else []),
                "--model_name_or_path", self.backbone, "--dataset_name", self.spec.dataset,
                *data_flags, "--seed", str(self.spec.seed), *flags(train_args),
            ]
            job = TrainingJob(key=key, target=target, configs=data, description=description, train_args=train_args,
                              sft_args=sft_args, model_dir=model_dir, mixture=mixture, mixture_path=mixture_path)
            self.trainings[key] = job
        job.uses.append(use)
        return job

    # ---- cells --------------------------------------------------------------------------------
    def _eval(self, model_id: str, model: str, training: str | None, config: str, name: str, meta: dict,
              use: str) -> str:
        ev = self._evals.setdefault(model_id, {"model": model, "training": training, "configs": [], "name": name,
                                               "meta": meta, "uses": []})
        if config not in ev["configs"]:
            ev["configs"].append(config)
        ev["uses"].append(use)
        return model_id

    def add_cell(self, arm_name: str, arm: ArmSpec, row: RowSpec, *, series: str | None = None,
                 figure: str | None = None, volume: int | None = None, xlabel: str | None = None,
                 budget: int | None = None, target_samples: int = 0, untrained: bool = False) -> None:
        use = f"{row.id} {arm_name}" if series is None else f"{figure} {series} @{volume}"
        name = slug(arm_name) if series is None else f"{slug(figure or '')}__{slug(series)}__{volume}"
        training = None
        if untrained or (not arm.trains and not arm.checkpoint):
            model, model_id, combination = self.backbone, f"model:{self.backbone}", ""
            name = "baseline" if series is None else name
        elif arm.checkpoint:
            model = self._fill(arm.checkpoint, row)
            model_id, combination = f"model:{model}", f"checkpoint {model}"
            if model != arm.checkpoint:
                name = f"{name}__{row.id}"
        else:
            job = self.training(arm_name, arm, row, use, budget=budget, target_samples=target_samples)
            training, model, model_id, combination = job.key, str(job.model_dir), job.key, job.description
            if not arm.shared and series is None:
                name = f"{name}__{row.id}"
        meta = {"arm": arm_name, "combination": combination, "row": row.id}
        if series is not None:
            meta.update(series=series, figure=figure, volume=volume, xlabel=xlabel)
        eval_id = self._eval(model_id, model, training, row.target, name, meta, use)
        self.cells.append(Cell(row=row.id or row.target, target=row.target, arm=arm_name, eval_job=eval_id,
                               training=training, combination=combination, series=series, figure=figure,
                               volume=volume, xlabel=xlabel))

    def finish(self) -> dict[str, EvalJob]:
        """Give every evaluation its key and a unique run folder; point the cells at the keys."""
        evals: dict[str, EvalJob] = {}
        by_id: dict[str, str] = {}
        taken: set[str] = set()
        for model_id, ev in self._evals.items():
            key = short_hash({"model": ev["model"], "training": ev["training"], "configs": sorted(ev["configs"]),
                              "dataset": self.spec.dataset, "eval": self.spec.eval.model_dump()})
            name, i = ev["name"], 2
            while name in taken:
                name, i = f"{ev['name']}-{i}", i + 1
            taken.add(name)
            evals[key] = EvalJob(key=key, model=ev["model"], training=ev["training"], configs=ev["configs"],
                                 run_dir=self.out / "runs" / name, meta=ev["meta"], uses=ev["uses"])
            by_id[model_id] = key
        for cell in self.cells:
            cell.eval_job = by_id[cell.eval_job]
        return evals


def make_plan(spec: ExperimentSpec, out: str | Path, *, registry: str | None = None) -> Plan:
    """All trainings, evaluations and cells of ``spec`` with outputs under ``out``; writes nothing."""
    out = Path(out).resolve()
    b = _Builder(spec, out, registry)
    rows = spec.all_rows()
    for arm_name, arm in spec.arms.items():
        for row in rows:
            if arm.targets is not None and row.target not in arm.targets:
                continue
            b.add_cell(arm_name, arm, row)
    for vol in spec.volume:
        xlabel = f"{vol.vary} samples"
        for series, arm in vol.series.items():
            for row in rows:
                if arm.targets is not None and row.target not in arm.targets:
                    continue
                figure = f"{vol.name}-{row.id}" if len(rows) > 1 else vol.name
                for size in vol.sizes:
                    common = dict(series=series, figure=figure, volume=size, xlabel=xlabel)
                    if vol.vary == "combination":
                        b.add_cell(series, arm, row, budget=size, untrained=size == 0, **common)
                    else:
                        b.add_cell(series, arm, row, budget=vol.fixed, target_samples=size, **common)
    evals = b.finish()
    return Plan(spec=spec, out=out, backbone=b.backbone, recipe=b.recipe, rows=rows, trainings=b.trainings,
                evals=evals, cells=b.cells, caps=b.caps, build_report=b.build_report)
